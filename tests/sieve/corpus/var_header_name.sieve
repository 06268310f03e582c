require ["variables", "fileinto"];
set "h" "x-caffeine";
if header :contains "${h}" "N4" { fileinto "found-${h}"; }
