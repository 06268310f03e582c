require ["date", "relational", "fileinto"];
if currentdate :zone "+1400" :value "ge" "year" "2020" { fileinto "year"; }
if currentdate :zone "-1100" :matches "zone" "-1100" { fileinto "zone"; }
