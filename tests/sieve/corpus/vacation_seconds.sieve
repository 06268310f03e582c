require "vacation-seconds";
vacation :seconds 172800 "Back in two days";
