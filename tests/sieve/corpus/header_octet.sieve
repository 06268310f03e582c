require "fileinto";
if header :comparator "i;octet" :contains "x-caffeine" "c8h10" { fileinto "octet"; }
elsif header :comparator "i;ascii-casemap" :contains "x-caffeine" "c8h10" { fileinto "casemap"; }
