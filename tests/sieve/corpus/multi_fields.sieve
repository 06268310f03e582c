# message: group.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if header :is "x-multi" "two" { fileinto "second"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-multi" "3" { fileinto "three"; }
if header :count "eq" :comparator "i;ascii-numeric" ["x-multi", "subject"] "4" { fileinto "four"; }
if exists "X-MULTI" { fileinto "exists"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-number" "42" { fileinto "numeric-eq"; }
if header :is :comparator "i;ascii-numeric" "x-number" "42" { fileinto "numeric-is"; }
