#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/core/base64.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using mailroom::testing::run;

namespace {

result<auth::identity> authenticate(auth::backend& b, std::string authzid, std::string authcid, std::string password) {
  asio::io_context io;
  return run(io, b.authenticate(sasl::credentials{std::move(authzid), std::move(authcid), std::move(password)}));
}

/// A backend that relies on the default scram_secret().
class password_only final : public auth::backend {
 public:
  task<result<auth::identity>> authenticate(sasl::credentials const&) override { co_return fail(errc::bad_credentials); }
  task<result<bool>> user_exists(std::string_view) override { co_return false; }
};

}  // namespace

TEST_CASE("memory_backend authenticates known users with the right password") {
  auth::memory_backend b;
  b.add_user("alice", "secret");
  b.add_user("bob", "p\xc3\xa4ss");
  CHECK(b.supports_scram());

  auto ok = authenticate(b, "", "alice", "secret");
  REQUIRE(ok);
  CHECK(ok->user == "alice");
  CHECK(authenticate(b, "", "bob", "p\xc3\xa4ss"));
  CHECK(authenticate(b, "alice", "alice", "secret"));

  auto wrong = authenticate(b, "", "alice", "Secret");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error() == errc::bad_credentials);
  CHECK(authenticate(b, "", "alice", "").error() == errc::bad_credentials);
  CHECK(authenticate(b, "", "alice", "p\xc3\xa4ss").error() == errc::bad_credentials);

  auto unknown = authenticate(b, "", "carol", "secret");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == errc::unknown_credentials);
  CHECK(authenticate(b, "", "Alice", "secret").error() == errc::unknown_credentials);
}

TEST_CASE("memory_backend refuses proxy authorization") {
  auth::memory_backend b;
  b.add_user("alice", "secret");
  b.add_user("bob", "other");
  CHECK(authenticate(b, "bob", "alice", "secret").error() == errc::bad_credentials);
  CHECK(authenticate(b, "admin", "alice", "secret").error() == errc::bad_credentials);
}

TEST_CASE("memory_backend replaces a user's password") {
  auth::memory_backend b;
  b.add_user("alice", "old");
  b.add_user("alice", "new");
  CHECK(authenticate(b, "", "alice", "old").error() == errc::bad_credentials);
  CHECK(authenticate(b, "", "alice", "new"));
}

TEST_CASE("memory_backend keeps a salted SCRAM secret per user") {
  auth::memory_backend b;
  b.add_user("alice", "secret");
  b.add_user("bob", "secret");
  asio::io_context io;

  auto alice = run(io, b.scram_secret("alice"));
  auto bob = run(io, b.scram_secret("bob"));
  REQUIRE(alice);
  REQUIRE(bob);
  CHECK(alice->iterations == 4096);
  CHECK(alice->salt.size() == 16);
  CHECK(alice->salt != bob->salt);
  CHECK(alice->stored_key != bob->stored_key);
  auto const again = sasl::make_scram_secret("secret", alice->salt, alice->iterations);
  CHECK(again.stored_key == alice->stored_key);
  CHECK(again.server_key == alice->server_key);

  auto missing = run(io, b.scram_secret("carol"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == errc::unknown_credentials);
}

TEST_CASE("memory_backend answers user_exists") {
  auth::memory_backend b;
  b.add_user("alice", "secret");
  asio::io_context io;
  auto yes = run(io, b.user_exists("alice"));
  REQUIRE(yes);
  CHECK(*yes);
  auto no = run(io, b.user_exists("alic"));
  REQUIRE(no);
  CHECK_FALSE(*no);
}

TEST_CASE("a backend without SCRAM support reports unsupported") {
  password_only b;
  CHECK_FALSE(b.supports_scram());
  asio::io_context io;
  auto r = run(io, static_cast<auth::backend&>(b).scram_secret("alice"));
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::unsupported);
}

TEST_CASE("memory_backend's SCRAM secret is what the server mechanism announces") {
  auth::memory_backend b;
  b.add_user("user", "pencil");
  asio::io_context io;
  auto m = sasl::make_server_mechanism("SCRAM-SHA-256");
  REQUIRE(m);
  auto& mech = **m;
  REQUIRE(mech.step("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", true).k == sasl::step_result::kind::need_scram_secret);
  auto secret = run(io, b.scram_secret(mech.scram_user()));
  REQUIRE(secret);
  auto const server_first = mech.set_scram_secret(&*secret);
  REQUIRE(server_first.k == sasl::step_result::kind::challenge);
  CHECK(server_first.data.find(",s=" + base64::encode(secret->salt) + ",i=4096") != std::string::npos);
}
