require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "three"; }
if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { fileinto "two-received"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "high"; }
if header :value "gt" :comparator "i;ascii-numeric" "subject" "99" { fileinto "infinity"; }
if address :value "lt" :localpart "from" "d" { fileinto "before-d"; }
