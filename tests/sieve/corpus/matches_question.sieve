require "fileinto";
if header :matches "x-caffeine" "c?10n4*" { fileinto "wrong"; }
