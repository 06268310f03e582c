require "fileinto";
keep;
require "reject";
