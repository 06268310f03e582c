require "fileinto";

if address :is "subject" "x" { fileinto "x"; }
