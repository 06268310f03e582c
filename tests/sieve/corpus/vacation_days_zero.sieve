require "vacation";
vacation :days 0 "Gone";
