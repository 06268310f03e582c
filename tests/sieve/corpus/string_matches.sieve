require ["variables", "fileinto"];
if string :matches "user+tag@example.org" "*+*@*" { fileinto "${1}.${2}.${3}"; }
