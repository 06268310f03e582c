require ["variables", "fileinto"];
if header :matches "x-caffeine" "C*H*" { set "a" "${1}"; }
if header :matches "x-caffeine" "nomatch*" { fileinto "wrong"; }
fileinto "keep-${1}-${a}";
