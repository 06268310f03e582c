require ["vacation", "fileinto"];
fileinto "Archive";
vacation "Gone";
