require ["imap4flags", "fileinto"];
setflag "\\Flagged";
addflag ["\\Seen", "Work"];
removeflag "\\flagged";
fileinto "flagged";
if hasflag :contains "work" { fileinto "has-work"; }
