require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "eq" :comparator "i;ascii-numeric" "x-none" "0" { fileinto "zero"; }
if address :count "lt" :comparator "i;ascii-numeric" "bcc" "1" { fileinto "lt1"; }
