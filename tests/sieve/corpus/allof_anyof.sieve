require "fileinto";
if allof (header :contains "from" "coyote", not header :contains "from" "roadrunner") { fileinto "a"; }
if anyof (false, header :is "x-none" "", exists "cc") { fileinto "b"; }
if allof (true, false) { fileinto "c"; } elsif anyof (false) { fileinto "d"; } else { fileinto "e"; }
