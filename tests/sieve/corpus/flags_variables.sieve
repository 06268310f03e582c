require ["imap4flags", "variables", "fileinto"];
set "f" "";
addflag "f" ["A", "B", "c"];
removeflag "f" "b";
fileinto :flags "${f}" "withvar";
if hasflag "f" "a" { fileinto "has-a"; }
if hasflag :contains ["f", "none"] "C" { fileinto "has-c"; }
