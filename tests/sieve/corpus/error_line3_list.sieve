if header :is "a" [
  "b",
  c ] { keep; }
