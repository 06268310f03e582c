require "encoded-character";
keep;
if header :is "a" "${unicode:D800}" { keep; }
