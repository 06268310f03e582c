# message: group.eml
require "fileinto";
if address :all :is "cc" "bob@example.net" { fileinto "bob"; }
if header :contains "cc" "Bob" { fileinto "bob-header"; }
