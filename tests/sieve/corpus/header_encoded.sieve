require "fileinto";
if header :contains "subject" "present for you ☺" { fileinto "decoded"; } else { fileinto "raw"; }
