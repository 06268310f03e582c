require ["fileinto", "variables"];
if header :matches "x-caffeine" "*H*N*" { fileinto "${0}-${1}-${2}-${3}-${4}"; }
