require ["envelope", "fileinto"];
if envelope :all :is "from" "coyote@desert.example.org" { fileinto "env-from"; }
if envelope :domain :is "to" "acme.example.com" { fileinto "env-to"; }
if envelope :localpart :contains "to" "runner" { fileinto "env-local"; }
