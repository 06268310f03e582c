require ["imap4flags", "fileinto"];
setflag ["\\Seen", "$Label1", "work"];
if hasflag :matches "$label*" { fileinto "label"; }
if hasflag :is ["\\seen", "nothere"] { fileinto "seen"; }
if not hasflag "nothere" { fileinto "not"; }
