require "fileinto";
if false { fileinto "a"; } else { stop; }
fileinto "b";
