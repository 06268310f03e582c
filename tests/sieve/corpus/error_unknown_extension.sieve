require ["fileinto", "x-nonesuch"];
