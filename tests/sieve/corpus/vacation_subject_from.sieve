require "vacation";
vacation :subject "Out of office" :from "roadrunner@acme.example.com" :handle "ooo" :days 14 "Back on Monday";
