require ["encoded-character", "fileinto"];
if header :contains "x-caffeine" "${hex:43 38}" { fileinto "${unicode:0048}ex"; }
