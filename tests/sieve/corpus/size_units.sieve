require "fileinto";
if size :under 1K { fileinto "under-1k"; }
if size :over 1k { fileinto "over-1k"; }
if size :under 0 { fileinto "never"; }
