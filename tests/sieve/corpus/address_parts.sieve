require "fileinto";
if address :localpart :is "from" "coyote" { fileinto "local"; }
if address :domain :is "to" "example.com" { fileinto "domain"; }
if address :all :is "cc" "FRIENDS@example.net" { fileinto "all"; }
if address :is "from" "Wile E. Coyote" { fileinto "name"; }
