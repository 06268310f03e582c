require ["copy", "fileinto"];
redirect :copy "x@example.org";
fileinto :copy "Copy";
