if header :comparator "i;unknown" :is "a" "b" { keep; }
