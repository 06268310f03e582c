require ["variables", "fileinto"];
if anyof (header :matches "subject" "*present*", header :matches "from" "*coyote*") { fileinto "${1}"; }
