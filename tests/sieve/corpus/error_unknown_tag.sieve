if header :nonesuch "a" "b" { keep; }
