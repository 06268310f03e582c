require ["variables", "fileinto"];
set "MixedCase" "v";
fileinto "${mixedcase}${MIXEDCASE}";
