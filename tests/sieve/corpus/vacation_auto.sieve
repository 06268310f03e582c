# message: auto.eml
require "vacation";
vacation "Gone";
