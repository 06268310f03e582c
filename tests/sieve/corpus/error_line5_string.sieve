require "fileinto";
/* multi
   line
   comment */ fileinto "unterminated;
keep;
