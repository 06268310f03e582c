require "reject"; if header :contains "subject" "present" { reject "I do not accept presents"; }
