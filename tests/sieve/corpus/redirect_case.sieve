redirect "a@example.org"; redirect "a@EXAMPLE.ORG"; redirect "A@example.org";
