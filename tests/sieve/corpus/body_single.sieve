# message: group.eml
require ["body", "fileinto"];
if body :contains "single part" { fileinto "casemap"; }
if body :comparator "i;octet" :contains "single part" { fileinto "octet-wrong"; }
if body :text :matches "*message*" { fileinto "matches"; }
