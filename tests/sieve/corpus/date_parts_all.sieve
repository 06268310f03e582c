require ["date", "variables", "fileinto"];
if date :zone "+0530" :matches "date" "std11" "*" { set "s" "${0}"; }
if date :zone "+0530" :matches "date" "iso8601" "*" { set "i" "${0}"; }
if date :zone "-0930" :matches "date" "date" "*" { set "d" "${0}"; }
if date :zone "+0000" :matches "date" "julian" "*" { set "j" "${0}"; }
fileinto "${d}";
fileinto "${j}";
if string :is "${s}" "Sat, 13 Aug 2005 09:43:00 +0530" { fileinto "std11-ok"; }
if string :is "${i}" "2005-08-13T09:43:00+05:30" { fileinto "iso-ok"; }
