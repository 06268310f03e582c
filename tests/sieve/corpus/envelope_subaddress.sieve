require ["envelope", "subaddress", "fileinto"];
if envelope :user "to" "roadrunner" { fileinto "user"; }
if envelope :detail "to" "birds" { fileinto "detail"; }
if envelope :detail "from" "" { fileinto "nodetail"; }
if envelope :localpart :matches "from" "coy*" { fileinto "from-local"; }
