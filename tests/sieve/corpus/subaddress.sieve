require ["subaddress", "fileinto", "envelope"];
if address :user "to" "roadrunner" { fileinto "user"; }
if address :detail "to" "birds" { fileinto "detail"; }
if address :detail "cc" "" { fileinto "no-detail"; }
