require ["date", "relational", "fileinto"];
if date :value "ge" :originalzone "date" "hour" "09" { fileinto "after-nine"; }
if date :is :zone "+0000" "date" "date" "2005-08-13" { fileinto "utc-date"; }
if date :is :originalzone "date" "weekday" "5" { fileinto "friday"; }
if date :is :zone "+0000" "date" "julian" "53595" { fileinto "julian"; }
if date :is :originalzone "date" "std11" "Fri, 12 Aug 2005 21:13:00 -0700" { fileinto "std11"; }
if date :is :originalzone "date" "iso8601" "2005-08-12T21:13:00-07:00" { fileinto "iso"; }
if currentdate :value "ge" "year" "2020" { fileinto "recent"; }
