require "vacation";
vacation :days 100 :subject "Away" :from "rr@acme.example.com" :handle "h1" "Gone fishing";
