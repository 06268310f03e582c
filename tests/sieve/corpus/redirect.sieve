redirect "archive@example.org"; redirect "archive@example.org";
