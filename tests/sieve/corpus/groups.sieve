# message: group.eml
require "fileinto";
if address :all :is "to" "" { fileinto "empty-to"; }
if address :is :all "cc" "roadrunner+birds@acme.example.com" { fileinto "in-group"; }
if address :domain :is "cc" "example.com" { fileinto "carol"; }
if address :localpart :is "from" "john public" { fileinto "quoted-local"; }
if address :domain :is "from" "example.org" { fileinto "domain-case"; }
