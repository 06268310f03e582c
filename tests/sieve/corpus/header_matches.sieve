require "fileinto";
if header :matches "subject" "I have a * for *" { fileinto "yes"; }
if header :matches "message-id" "<*@desert.example.org>" { fileinto "id"; }
if header :matches "x-caffeine" "c8h10n4o?" { fileinto "ci"; }
if header :matches "x-caffeine" "c8h10n4o\\?" { fileinto "escaped"; }
