require ["encoded-character", "fileinto"];
if exists "${hex:58}-Caffeine" { fileinto "found"; }
