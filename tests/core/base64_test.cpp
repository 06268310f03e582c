#include <doctest/doctest.h>

#include <ostream>
#include <string>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"

using namespace mailroom;

TEST_CASE("base64 encodes the RFC 4648 test vectors") {
  CHECK(base64::encode("") == "");
  CHECK(base64::encode("f") == "Zg==");
  CHECK(base64::encode("fo") == "Zm8=");
  CHECK(base64::encode("foo") == "Zm9v");
  CHECK(base64::encode("foob") == "Zm9vYg==");
  CHECK(base64::encode("fooba") == "Zm9vYmE=");
  CHECK(base64::encode("foobar") == "Zm9vYmFy");
  CHECK(base64::encode(std::string("\0\xff\xfe", 3)) == "AP/+");
}

TEST_CASE("base64 decodes what it encodes, for every byte value and length") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    auto const bytes = all.substr(all.size() - n);
    auto const back = base64::decode(base64::encode(bytes));
    REQUIRE(back);
    CHECK(*back == bytes);
  }
  auto const decoded = base64::decode("Zm9vYmE=");
  REQUIRE(decoded);
  CHECK(*decoded == "fooba");
  auto const empty = base64::decode("");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("base64 decode rejects everything that is not canonical") {
  char const* const bad[] = {
      "Zg",         // missing padding
      "Zg=",        // short padding
      "Zg===",      // too much padding
      "====",       // padding only
      "Z===",       // one symbol cannot carry a byte
      "Zm9v\r\n",   // line break
      " Zm9v",      // whitespace
      "Zm 9v",
      "Zm9v\t",
      "Z=g=",       // padding inside
      "Zg==Zg==",   // data after padding
      "Zh==",       // non-zero spare bits (canonical form is Zg==)
      "Zm9=",       // non-zero spare bits (canonical form is Zm8=)
      "Zm9v-_==",   // URL-safe alphabet
      "Zm9v!A==",
  };
  for (auto const* text : bad) {
    CAPTURE(text);
    auto const r = base64::decode(text);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
  }
  CHECK_FALSE(base64::decode(std::string("Zm9v\0\0\0\0", 8)));
  CHECK_FALSE(base64::decode(std::string("\x80\xff\xc3\xa9", 4)));
}

TEST_CASE("base64 handles a large input") {
  std::string const big(100'000, '\x5a');
  auto const encoded = base64::encode(big);
  CHECK(encoded.size() == (big.size() + 2) / 3 * 4);
  auto const back = base64::decode(encoded);
  REQUIRE(back);
  CHECK(*back == big);
  CHECK_FALSE(base64::decode(encoded + "A"));
}
