require ["index", "fileinto"];
if header :index 1 :contains "received" "mx.example.org by" { fileinto "first"; }
if header :index 1 :last :contains "received" "desert" { fileinto "last"; }
if header :index 3 :contains "received" "" { fileinto "none"; }
