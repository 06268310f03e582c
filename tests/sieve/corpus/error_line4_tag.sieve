require "fileinto";
# comment
if true {
  fileinto :copy "x";
}
