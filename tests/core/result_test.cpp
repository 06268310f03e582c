#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "mailroom/core/error.hpp"
#include "mailroom/core/result.hpp"

using namespace mailroom;

namespace {
result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return fail(errc::invalid_argument);
  return c - '0';
}
}  // namespace

TEST_CASE("expected holds a value or an error_code") {
  auto ok = parse_digit('7');
  REQUIRE(ok);
  CHECK(*ok == 7);
  auto bad = parse_digit('x');
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == errc::invalid_argument);
  CHECK(bad.error().message() == "invalid argument");
  CHECK(bad.value_or(-1) == -1);
  CHECK_THROWS_AS(bad.value(), bad_expected_access);
}

TEST_CASE("expected<void>") {
  result<void> ok;
  CHECK(ok.has_value());
  result<void> bad = fail(errc::limit_exceeded);
  CHECK_FALSE(bad);
  CHECK(bad.error() == errc::limit_exceeded);
}

TEST_CASE("expected with a move-only value") {
  expected<std::unique_ptr<std::string>> p = std::make_unique<std::string>("x");
  REQUIRE(p);
  auto owned = std::move(*p);
  CHECK(*owned == "x");
}
