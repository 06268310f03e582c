require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "x" "abc";
if string :count "eq" :comparator "i;ascii-numeric" ["", "a", "b"] "2" { fileinto "count2"; }
if string :value "gt" :comparator "i;ascii-numeric" "10" "9" { fileinto "numeric"; }
