// PLAIN and LOGIN server mechanisms: the exchanges the SMTP session drives, and every way a
// client can get them wrong.
#include <doctest/doctest.h>

#include <string>

#include "mailroom/sasl/server.hpp"

using namespace mailroom;
using namespace std::string_literals;
using kind = sasl::step_result::kind;

namespace {

std::unique_ptr<sasl::server_mechanism> make(std::string_view name) {
  auto m = sasl::make_server_mechanism(name);
  REQUIRE(m);
  return std::move(*m);
}

void check_failure(sasl::step_result const& r, sasl::errc e) {
  CHECK(r.k == kind::failure);
  CHECK(r.error == e);
  CHECK(r.data.empty());
}

}  // namespace

TEST_CASE("make_server_mechanism knows the advertised names, case-insensitively") {
  for (auto const& name : sasl::supported_server_mechanisms()) {
    auto m = make(name);
    CHECK(m->name() == name);
  }
  CHECK(make("plain")->name() == "PLAIN");
  CHECK(make("scram-sha-256")->name() == "SCRAM-SHA-256");
  auto unknown = sasl::make_server_mechanism("CRAM-MD5");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == sasl::errc::unsupported_mechanism);
  CHECK_FALSE(sasl::make_server_mechanism(""));
  CHECK_FALSE(sasl::make_server_mechanism("PLAIN "));
  CHECK(sasl::supported_server_mechanisms().front() == "SCRAM-SHA-256");
}

TEST_CASE("PLAIN with an initial response asks for a password check, then succeeds") {
  auto m = make("PLAIN");
  CHECK(m->pending_credentials() == nullptr);
  auto r = m->step("\0alice\0secret"s, true);
  REQUIRE(r.k == kind::check_password);
  auto const* creds = m->pending_credentials();
  REQUIRE(creds);
  CHECK(creds->authzid.empty());
  CHECK(creds->authcid == "alice");
  CHECK(creds->password == "secret");
  r = m->password_checked(true);
  CHECK(r.k == kind::success);
  CHECK(r.data.empty());
  CHECK(m->authcid() == "alice");
  CHECK(m->authzid().empty());
  CHECK(m->pending_credentials() == nullptr);
}

TEST_CASE("PLAIN without an initial response sends an empty challenge first") {
  auto m = make("PLAIN");
  auto r = m->step("", false);
  CHECK(r.k == kind::challenge);
  CHECK(r.data.empty());
  r = m->step("admin\0bob\0p\xc3\xa4ss"s);
  REQUIRE(r.k == kind::check_password);
  CHECK(m->pending_credentials()->authzid == "admin");
  CHECK(m->pending_credentials()->authcid == "bob");
  CHECK(m->pending_credentials()->password == "p\xc3\xa4ss");
  r = m->password_checked(true);
  CHECK(r.k == kind::success);
  CHECK(m->authzid() == "admin");
}

TEST_CASE("PLAIN reports a rejected password as authentication_failed and then refuses to go on") {
  auto m = make("PLAIN");
  REQUIRE(m->step("\0alice\0wrong"s, true).k == kind::check_password);
  check_failure(m->password_checked(false), sasl::errc::authentication_failed);
  check_failure(m->step("\0alice\0secret"s), sasl::errc::protocol_error);
  check_failure(m->password_checked(true), sasl::errc::protocol_error);
}

TEST_CASE("PLAIN rejects malformed messages") {
  std::string const field255(255, 'x');
  std::string const bad[] = {
      ""s,                                   // empty initial response
      "alice"s,                              // no NUL
      "\0alice"s,                            // one NUL
      "\0\0secret"s,                         // empty authcid
      "\0alice\0"s,                          // empty password
      "\0\0"s,                               // NUL only
      "\0\0\0"s,
      "\0alice\0se\0cret"s,                  // extra NUL
      "\0alice\0secret\0"s,
      "\0al\xff" "ice\0secret"s,             // not UTF-8 in authcid
      "\0alice\0\xc0\xafsecret"s,            // overlong UTF-8 in password
      "\xed\xa0\x80\0alice\0secret"s,        // surrogate in authzid
      "\0"s + field255 + "y" + "\0p"s,       // authcid over 255 bytes
      "\0a\0"s + field255 + "y",             // password over 255 bytes
      field255 + "y" + "\0a\0p"s,            // authzid over 255 bytes
      std::string(100'000, 'A'),             // 100 KB, no NUL
      "\0"s + std::string(100'000, 'A') + "\0p"s,
  };
  for (auto const& msg : bad) {
    CAPTURE(msg.size());
    auto m = make("PLAIN");
    check_failure(m->step(msg, true), sasl::errc::malformed);
    CHECK(m->pending_credentials() == nullptr);
    check_failure(m->step("\0alice\0secret"s), sasl::errc::protocol_error);
  }
  // The limits themselves are accepted.
  auto m = make("PLAIN");
  CHECK(m->step(field255 + "\0"s + field255 + "\0"s + field255, true).k == kind::check_password);
}

TEST_CASE("PLAIN refuses calls in the wrong state") {
  SUBCASE("password_checked before any step") {
    auto m = make("PLAIN");
    check_failure(m->password_checked(true), sasl::errc::protocol_error);
  }
  SUBCASE("step while the password is being checked") {
    auto m = make("PLAIN");
    REQUIRE(m->step("\0alice\0secret"s, true).k == kind::check_password);
    check_failure(m->step("\0alice\0secret"s), sasl::errc::protocol_error);
    check_failure(m->password_checked(true), sasl::errc::protocol_error);
  }
  SUBCASE("data in a first call that claims there is no initial response") {
    auto m = make("PLAIN");
    check_failure(m->step("\0alice\0secret"s, false), sasl::errc::protocol_error);
  }
  SUBCASE("step after success") {
    auto m = make("PLAIN");
    REQUIRE(m->step("\0alice\0secret"s, true).k == kind::check_password);
    REQUIRE(m->password_checked(true).k == kind::success);
    check_failure(m->step(""), sasl::errc::protocol_error);
    check_failure(m->password_checked(true), sasl::errc::protocol_error);
  }
  SUBCASE("SCRAM calls on a password mechanism") {
    auto m = make("PLAIN");
    CHECK(m->scram_user().empty());
    check_failure(m->set_scram_secret(nullptr), sasl::errc::protocol_error);
  }
}

TEST_CASE("LOGIN asks for the user name and the password") {
  auto m = make("LOGIN");
  auto r = m->step("", false);
  CHECK(r.k == kind::challenge);
  CHECK(r.data == "Username:");
  r = m->step("alice");
  CHECK(r.k == kind::challenge);
  CHECK(r.data == "Password:");
  r = m->step("secret");
  REQUIRE(r.k == kind::check_password);
  REQUIRE(m->pending_credentials());
  CHECK(m->pending_credentials()->authcid == "alice");
  CHECK(m->pending_credentials()->password == "secret");
  CHECK(m->pending_credentials()->authzid.empty());
  CHECK(m->password_checked(true).k == kind::success);
  CHECK(m->authcid() == "alice");
  check_failure(m->step("again"), sasl::errc::protocol_error);
}

TEST_CASE("LOGIN takes an initial response as the user name") {
  auto m = make("LOGIN");
  auto r = m->step("alice", true);
  CHECK(r.k == kind::challenge);
  CHECK(r.data == "Password:");
  REQUIRE(m->step("secret").k == kind::check_password);
  check_failure(m->password_checked(false), sasl::errc::authentication_failed);
}

TEST_CASE("LOGIN rejects empty, oversized, NUL-bearing and non-UTF-8 fields") {
  std::string const bad[] = {""s, "\0"s, "al\0ice"s, "\xff\xfe"s, std::string(256, 'a'), std::string(100'000, 'a')};
  for (auto const& field : bad) {
    CAPTURE(field.size());
    auto initial = make("LOGIN");
    check_failure(initial->step(field, true), sasl::errc::malformed);

    auto user = make("LOGIN");
    REQUIRE(user->step("", false).k == kind::challenge);
    check_failure(user->step(field), sasl::errc::malformed);

    auto password = make("LOGIN");
    REQUIRE(password->step("alice", true).k == kind::challenge);
    check_failure(password->step(field), sasl::errc::malformed);
    CHECK(password->pending_credentials() == nullptr);
  }
}
