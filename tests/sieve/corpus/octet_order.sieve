require ["fileinto", "relational"];
if header :value "lt" :comparator "i;octet" "x-caffeine" "a" { fileinto "upper-before-lower"; }
if header :value "gt" :comparator "i;ascii-casemap" "x-caffeine" "b" { fileinto "casemap-c-after-b"; }
if header :value "ne" "x-caffeine" "c8h10n4o2" { fileinto "wrong"; }
