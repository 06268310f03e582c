#include <doctest/doctest.h>

#include "mailroom/core/text.hpp"

using namespace mailroom;

TEST_CASE("modified UTF-7 round-trips as RFC 3501 shows it, and refuses non-canonical forms") {
  CHECK(text::encode_mutf7("Entwürfe") == "Entw&APw-rfe");
  CHECK(text::encode_mutf7("~peter/mail/日本語/台北") == "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
  CHECK(text::encode_mutf7("A&B") == "A&-B");
  CHECK(text::encode_mutf7("😀") == "&2D3eAA-");
  CHECK(text::decode_mutf7("Entw&APw-rfe") == "Entwürfe");
  CHECK(text::decode_mutf7("&2D3eAA-") == "😀");
  CHECK(text::decode_mutf7("A&-B") == "A&B");
  CHECK(!text::decode_mutf7("&AGE-"));   // 'a' must be written directly
  CHECK(!text::decode_mutf7("&2D0-"));   // lone surrogate
  CHECK(!text::decode_mutf7("&Jjo"));    // unterminated
  CHECK(!text::decode_mutf7("a\x01"));
}
