# message: multipart.eml
require "vacation";
vacation :addresses ["roadrunner@acme.example.com"] "I am away";
