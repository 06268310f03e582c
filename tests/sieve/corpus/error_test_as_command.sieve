require "fileinto";
if true {
  header "a" "b";
}
