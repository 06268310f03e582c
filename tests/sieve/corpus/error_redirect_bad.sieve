redirect "no-at-sign";
