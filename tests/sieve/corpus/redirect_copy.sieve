require "copy"; redirect :copy "archive@example.org";
