# message: list.eml
require ["variables", "fileinto"];
if header :matches "List-Id" "*<*.*.*>" { fileinto "lists.${2}"; }
if header :matches "Subject" "[*] *" { fileinto "subj.${1}"; }
if address :matches "to" "*@**.org" { fileinto "to.${1}.${2}.${3}"; }
