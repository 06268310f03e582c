require "fileinto";
if allof(anyof(not not true, false), not anyof(false, not true), allof(true, not false)) { fileinto "deep"; }
