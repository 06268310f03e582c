require "fileinto";
if false { fileinto "a"; }
elsif header :is "x-none" "x" { fileinto "b"; }
elsif size :over 1 { fileinto "c"; }
elsif true { fileinto "d"; }
else { fileinto "e"; }
if false { fileinto "f"; } else { fileinto "g"; }
