require "reject";
reject text:
I do not want
..this message
.
;
