# message: group.eml
require ["date", "fileinto"];
if date :is "received" "year" "2024" { fileinto "received-2024"; }
if date :is :originalzone "date" "date" "2023-12-31" { fileinto "orig"; }
if date :is :zone "+0000" "date" "date" "2023-12-31" { fileinto "utc"; }
if date :is :zone "-1200" "date" "time" "21:59:59" { fileinto "minus12"; }
if date :is :zone "+0000" "date" "weekday" "0" { fileinto "sunday"; }
