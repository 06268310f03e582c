require ["fileinto", "variables"];
set :upper "x" "café";
set :length "n" "café";
fileinto "${x}";
fileinto "${n}";
