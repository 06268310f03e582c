require "reject";
reject text:
line
.
keep;
discard x;
