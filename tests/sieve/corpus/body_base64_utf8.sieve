# message: encoded.eml
require ["body", "fileinto"];
if body :text :contains "Grüße aus Köln" { fileinto "decoded"; }
if body :raw :contains "R3LDvMOf" { fileinto "raw"; }
