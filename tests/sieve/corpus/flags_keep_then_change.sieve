require ["imap4flags", "fileinto"];
setflag "a";
fileinto "one";
addflag "b";
fileinto "two";
removeflag "a";
keep;
