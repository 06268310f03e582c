require "vacation";
vacation "Gone";
discard;
