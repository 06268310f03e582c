require ["variables", "fileinto"];
set "a" "x";
fileinto "${a";
fileinto "${a}${";
fileinto "$${a}}";
