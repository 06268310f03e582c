require ["date", "index", "fileinto"];
if date :index 2 :zone "+0000" :is "received" "time" "04:13:30" { fileinto "second-received"; }
if date :index 1 :last :zone "+0000" :is "received" "time" "04:13:30" { fileinto "last-received"; }
