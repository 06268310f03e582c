# message: encoded.eml
require "fileinto";
if header :is "subject" "If you can read this you understand the example." { fileinto "joined"; }
if header :contains "from" "Jörg" { fileinto "latin1"; }
if address :localpart :is "from" "joerg" { fileinto "addr"; }
