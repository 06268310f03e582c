# message: list.eml
require "vacation";
vacation :addresses "sieve@lists.example.org" "Gone";
