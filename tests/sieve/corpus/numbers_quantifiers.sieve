require "fileinto";
if size :over 0K { fileinto "zero-k"; }
if size :under 1G { fileinto "under-g"; }
if size :over 1m { fileinto "over-m"; }
