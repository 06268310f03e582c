# message: multipart.eml
require ["body", "fileinto"];
if body :text :contains "Café" { fileinto "text"; }
if body :content "text/html" :contains "<b>quarterly</b>" { fileinto "html"; }
if body :content "application" :contains "secret" { fileinto "app"; }
if body :raw :contains "c2VjcmV0" { fileinto "raw"; }
if body :text :contains "secret" { fileinto "wrong"; }
