if size :over "10" { keep; }
