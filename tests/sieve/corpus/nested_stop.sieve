require "fileinto";
if true { if header :contains "from" "coyote" { fileinto "a"; stop; } fileinto "b"; }
fileinto "c";
