require "fileinto";
if true {
  if true {
    if true {
      keep;
      filein "x";
    }
  }
}
