require "fileinto";
fileinto "a1"; fileinto "a2"; fileinto "a3"; fileinto "a4"; fileinto "a5"; fileinto "a6"; fileinto "a7"; fileinto "a8";
fileinto "a9"; fileinto "a10"; fileinto "a11"; fileinto "a12"; fileinto "a13"; fileinto "a14"; fileinto "a15"; fileinto "a16";
fileinto "a17"; fileinto "a18"; fileinto "a19"; fileinto "a20"; fileinto "a21"; fileinto "a22"; fileinto "a23"; fileinto "a24";
fileinto "a25"; fileinto "a26"; fileinto "a27"; fileinto "a28"; fileinto "a29"; fileinto "a30"; fileinto "a31"; fileinto "a32";
fileinto "a33";
