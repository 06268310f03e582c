# message: auto.eml
require "vacation";
if true { vacation :addresses "robot@example.org" "Gone"; }
