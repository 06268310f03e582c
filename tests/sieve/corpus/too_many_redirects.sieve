redirect "u1@example.org"; redirect "u2@example.org"; redirect "u3@example.org";
redirect "u4@example.org"; redirect "u5@example.org"; redirect "u6@example.org"; redirect "u7@example.org";
redirect "u8@example.org"; redirect "u9@example.org"; redirect "u10@example.org"; redirect "u11@example.org";
