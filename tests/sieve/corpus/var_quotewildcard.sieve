require ["variables", "fileinto"];
set :quotewildcard "q" "a*b?c\\d";
if string :matches "a*b?c\\d" "${q}" { fileinto "literal"; }
if string :matches "axxbyc\\d" "${q}" { fileinto "wrong"; }
