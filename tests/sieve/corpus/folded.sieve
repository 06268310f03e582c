# message: group.eml
require "fileinto";
if header :is "subject" "folded subject line	with tab" { fileinto "unfolded-is"; }
if header :contains "subject" "line" { fileinto "unfolded-contains"; }
if header :matches "subject" "folded*tab" { fileinto "unfolded-matches"; }
