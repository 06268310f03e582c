require ["imap4flags", "fileinto"];
addflag "internal";
fileinto :flags ["x", "y"] "explicit";
fileinto :flags "" "empty";
