# message: encoded.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; }
if header :is "x-spam-flag" "yes" { fileinto "flag"; }
