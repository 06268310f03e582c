require "fileinto";
if exists ["From", "Date", "X-Caffeine"] { fileinto "exists"; }
if exists ["From", "X-None"] { fileinto "not-exists"; }
if size :over 100 { fileinto "big"; }
if size :under 100 { fileinto "small"; }
if not size :over 1M { fileinto "not-huge"; }
