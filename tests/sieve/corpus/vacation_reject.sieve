require ["vacation", "reject"]; vacation "a"; reject "b";
