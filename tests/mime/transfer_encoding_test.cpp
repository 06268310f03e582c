#include <doctest/doctest.h>

#include <string>

#include "mailroom/mime/transfer_encoding.hpp"

using namespace mailroom;

TEST_CASE("base64 bodies decode with line breaks and stray characters") {
  CHECK(mime::decode_base64("aGVsbG8g\r\nd29ybGQ=\r\n") == "hello world");
  CHECK(mime::decode_base64("aGVs bG8*\t") == "hello");
  CHECK(mime::decode_base64("AA==") == std::string(1, '\0'));
  CHECK(mime::decode_base64("AAEC/w==").size() == 4);
  CHECK(mime::decode_base64("aGk=garbage after padding") == "hi");
  CHECK(mime::decode_base64("").empty());
  CHECK(mime::decode_base64("a").empty());  // fewer than 8 bits
}

TEST_CASE("quoted-printable bodies decode with soft line breaks") {
  CHECK(mime::decode_quoted_printable("caf=C3=A9") == "caf\xc3\xa9");
  CHECK(mime::decode_quoted_printable("long =\r\nline") == "long line");
  CHECK(mime::decode_quoted_printable("long = \t\nline") == "long line");
  CHECK(mime::decode_quoted_printable("a=3d=3D") == "a==");
  CHECK(mime::decode_quoted_printable("keep =ZZ and =4") == "keep =ZZ and =4");
  CHECK(mime::decode_quoted_printable("end=") == "end");
  CHECK(mime::decode_quoted_printable("x\r\ny\r\n") == "x\r\ny\r\n");
}

TEST_CASE("decode dispatches on the Content-Transfer-Encoding token") {
  CHECK(mime::decode("aGk=", "BASE64") == "hi");
  CHECK(mime::decode("aGk=", " base64 (comment)") == "hi");
  CHECK(mime::decode("a=3Db", "Quoted-Printable") == "a=b");
  CHECK(mime::decode("raw=3D", "") == "raw=3D");
  CHECK(mime::decode("raw", "8bit") == "raw");
  CHECK(mime::decode("raw", "binary") == "raw");
  CHECK_FALSE(mime::decode("x", "x-uuencode").has_value());
}

TEST_CASE("hostile transfer-encoded bodies stay bounded") {
  std::string junk(1 << 20, '=');
  CHECK(mime::decode_quoted_printable(junk).size() <= junk.size());
  CHECK(mime::decode_base64(junk).empty());
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes += static_cast<char>(i & 0xff);
  CHECK(mime::decode_base64(bytes).size() <= bytes.size());
  CHECK(mime::decode_quoted_printable(bytes).size() <= bytes.size());
}
