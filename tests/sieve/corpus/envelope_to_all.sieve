require ["envelope", "fileinto"];
if envelope :all :is "to" "ROADRUNNER+birds@acme.example.com" { fileinto "case-insensitive"; }
if envelope :all :comparator "i;octet" :is "to" "ROADRUNNER+birds@acme.example.com" { fileinto "octet-wrong"; }
