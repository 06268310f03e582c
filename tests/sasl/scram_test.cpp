// SCRAM-SHA-256 server: the RFC 7677 exchange byte for byte, a client computed here for other
// passwords, unknown users, and hostile client messages.
#include <doctest/doctest.h>

#include <string>

#include "mailroom/core/base64.hpp"
#include "mailroom/sasl/server.hpp"
#include "sasl/detail/crypto.hpp"
#include "sasl/detail/mechanisms.hpp"

using namespace mailroom;
using namespace std::string_literals;
using kind = sasl::step_result::kind;
namespace detail = sasl::detail;

namespace {

// RFC 7677 section 3.
constexpr std::string_view rfc_client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view rfc_server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
constexpr std::string_view rfc_nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

sasl::scram_secret rfc_secret() {
  auto salt = base64::decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  REQUIRE(salt);
  return sasl::make_scram_secret("pencil", *salt, 4096);
}

/// A mechanism that has sent the RFC's server-first message and waits for client-final.
std::unique_ptr<sasl::server_mechanism> rfc_after_server_first() {
  auto m = detail::make_scram_sha256_server(std::string(rfc_server_nonce));
  REQUIRE(m->step(rfc_client_first, true).k == kind::need_scram_secret);
  auto const secret = rfc_secret();
  auto const r = m->set_scram_secret(&secret);
  REQUIRE(r.k == kind::challenge);
  REQUIRE(r.data == rfc_server_first);
  return m;
}

std::string attribute_value(std::string_view msg, std::string_view prefix) {
  auto const at = msg.find(prefix);
  REQUIRE(at != std::string_view::npos);
  auto const value = msg.substr(at + prefix.size());
  return std::string(value.substr(0, value.find(',')));
}

struct client_final_message {
  std::string text;
  std::string expected_server_final;
};

/// The client's side of RFC 5802 section 3, written out independently of the server code.
client_final_message client_final(std::string_view password, std::string_view client_first,
                                  std::string_view server_first, std::string_view without_proof) {
  auto const salt = base64::decode(attribute_value(server_first, "s="));
  REQUIRE(salt);
  auto const iterations = static_cast<std::uint32_t>(std::stoul(attribute_value(server_first, ",i=")));
  auto const salted = detail::pbkdf2_sha256(password, *salt, iterations);
  auto const client_key = detail::hmac_sha256(detail::as_text(salted), "Client Key");
  auto const stored_key = detail::sha256(detail::as_text(client_key));
  auto const bare = client_first.substr(client_first.find(",n=") + 1);
  std::string const auth_message = std::string(bare) + "," + std::string(server_first) + "," + std::string(without_proof);
  auto const signature = detail::hmac_sha256(detail::as_text(stored_key), auth_message);
  std::string proof(32, '\0');
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
  auto const server_key = detail::hmac_sha256(detail::as_text(salted), "Server Key");
  auto const server_signature = detail::hmac_sha256(detail::as_text(server_key), auth_message);
  return {std::string(without_proof) + ",p=" + base64::encode(proof),
          "v=" + base64::encode(detail::as_text(server_signature))};
}

void check_failure(sasl::step_result const& r, sasl::errc e) {
  CHECK(r.k == kind::failure);
  CHECK(r.error == e);
  CHECK(r.data.empty());
}

}  // namespace

TEST_CASE("SCRAM-SHA-256 reproduces the RFC 7677 example exchange") {
  auto m = rfc_after_server_first();
  CHECK(m->scram_user() == "user");
  auto const r = m->step(rfc_client_final);
  CHECK(r.k == kind::success);
  CHECK(r.data == rfc_server_final);
  CHECK(m->authcid() == "user");
  CHECK(m->authzid().empty());
  check_failure(m->step(rfc_client_final), sasl::errc::protocol_error);
  check_failure(m->set_scram_secret(nullptr), sasl::errc::protocol_error);
}

TEST_CASE("SCRAM-SHA-256 stored key of the RFC 7677 example matches an independent computation") {
  auto const secret = rfc_secret();
  auto const exchange = client_final("pencil", rfc_client_first, rfc_server_first, "c=biws,r="s + std::string(rfc_nonce));
  CHECK(exchange.text == rfc_client_final);
  CHECK(exchange.expected_server_final == rfc_server_final);
  CHECK(secret.iterations == 4096);
  CHECK(secret.salt.size() == 16);
}

TEST_CASE("SCRAM-SHA-256 without an initial response starts with an empty challenge") {
  auto m = detail::make_scram_sha256_server(std::string(rfc_server_nonce));
  auto r = m->step("", false);
  CHECK(r.k == kind::challenge);
  CHECK(r.data.empty());
  REQUIRE(m->step(rfc_client_first).k == kind::need_scram_secret);
  auto const secret = rfc_secret();
  REQUIRE(m->set_scram_secret(&secret).data == rfc_server_first);
  r = m->step(rfc_client_final);
  CHECK(r.k == kind::success);
  CHECK(r.data == rfc_server_final);
}

TEST_CASE("SCRAM-SHA-256 with a random server nonce and another password") {
  auto m = sasl::make_server_mechanism("SCRAM-SHA-256");
  REQUIRE(m);
  auto& mech = **m;
  std::string const client_first = "y,,n=alice,r=clientnonce123";
  REQUIRE(mech.step(client_first, true).k == kind::need_scram_secret);
  CHECK(mech.scram_user() == "alice");
  auto const secret = sasl::make_scram_secret("correct horse", "0123456789abcdef", 4096);
  auto const server_first = mech.set_scram_secret(&secret);
  REQUIRE(server_first.k == kind::challenge);
  auto const nonce = attribute_value(server_first.data, "r=");
  REQUIRE(nonce.rfind("clientnonce123", 0) == 0);
  CHECK(nonce.size() >= std::string_view("clientnonce123").size() + 32);
  CHECK(attribute_value(server_first.data, "s=") == base64::encode("0123456789abcdef"));

  SUBCASE("right password, with an extension before the proof") {
    auto const msg = client_final("correct horse", client_first, server_first.data, "c=eSws,r=" + nonce + ",x=ignored");
    auto const r = mech.step(msg.text);
    CHECK(r.k == kind::success);
    CHECK(r.data == msg.expected_server_final);
  }
  SUBCASE("wrong password") {
    auto const msg = client_final("correct horse ", client_first, server_first.data, "c=eSws,r=" + nonce);
    check_failure(mech.step(msg.text), sasl::errc::authentication_failed);
  }
}

TEST_CASE("SCRAM-SHA-256 server nonces differ between exchanges") {
  auto const server_nonce = [] {
    auto m = detail::make_scram_sha256_server();
    REQUIRE(m->step("n,,n=a,r=x", true).k == kind::need_scram_secret);
    return attribute_value(m->set_scram_secret(nullptr).data, "r=x");
  };
  auto const a = server_nonce();
  auto const b = server_nonce();
  CHECK(a.size() == 32);
  CHECK(a != b);
  CHECK(a.find(',') == std::string::npos);
}

TEST_CASE("SCRAM-SHA-256 unknown users fail only at the proof, with a stable fake salt") {
  auto const server_first_for = [](std::string const& user) {
    auto m = detail::make_scram_sha256_server("servernonce");
    REQUIRE(m->step("n,,n=" + user + ",r=abc", true).k == kind::need_scram_secret);
    auto const r = m->set_scram_secret(nullptr);
    REQUIRE(r.k == kind::challenge);
    return r.data;
  };
  auto const first = server_first_for("ghost");
  CHECK(first == server_first_for("ghost"));
  CHECK(first != server_first_for("ghost2"));
  CHECK(attribute_value(first, ",i=") == "4096");
  auto const salt = base64::decode(attribute_value(first, "s="));
  REQUIRE(salt);
  CHECK(salt->size() == 16);

  auto m = detail::make_scram_sha256_server("servernonce");
  REQUIRE(m->step("n,,n=ghost,r=abc", true).k == kind::need_scram_secret);
  REQUIRE(m->set_scram_secret(nullptr).k == kind::challenge);
  auto const msg = client_final("anything", "n,,n=ghost,r=abc", first, "c=biws,r=abcservernonce");
  check_failure(m->step(msg.text), sasl::errc::authentication_failed);
}

TEST_CASE("SCRAM-SHA-256 decodes saslname escapes and the authzid, and binds the gs2 header") {
  std::string const client_first = "n,a=ad=2Cmin,n=us=3Der=2C,r=nonce";
  auto m = detail::make_scram_sha256_server("S");
  REQUIRE(m->step(client_first, true).k == kind::need_scram_secret);
  CHECK(m->scram_user() == "us=er,");
  auto const secret = sasl::make_scram_secret("pw", "salt", 4096);
  auto const server_first = m->set_scram_secret(&secret);
  REQUIRE(server_first.k == kind::challenge);

  SUBCASE("c= carries the exact gs2 header") {
    auto const msg = client_final("pw", client_first, server_first.data, "c=" + base64::encode("n,a=ad=2Cmin,") + ",r=nonceS");
    CHECK(m->step(msg.text).k == kind::success);
    CHECK(m->authcid() == "us=er,");
    CHECK(m->authzid() == "ad,min");
  }
  SUBCASE("c= with another gs2 header") {
    auto const msg = client_final("pw", client_first, server_first.data, "c=biws,r=nonceS");
    check_failure(m->step(msg.text), sasl::errc::authentication_failed);
  }
}

TEST_CASE("SCRAM-SHA-256 rejects malformed client-first messages") {
  std::string const bad[] = {
      ""s,
      "\0"s,
      "\0\0\0\0"s,
      "n,,n=user,r=abc\0"s,
      "p=tls-unique,,n=user,r=abc",  // channel binding: we do not offer -PLUS
      "p,,n=user,r=abc",
      "x,,n=user,r=abc",
      "N,,n=user,r=abc",
      "n,n=user,r=abc",              // gs2 header without the authzid slot
      "n,,r=abc,n=user",             // wrong order
      "n,,n=user",                   // missing nonce
      "n,,r=abc",                    // missing user
      "n,,n=,r=abc",                 // empty user
      "n,,n=user,r=",                // empty nonce
      "n,,n=user,r=a b",             // nonce not printable
      "n,,n=user,r=ab\x7f",
      "n,,m=ext,n=user,r=abc",       // mandatory extension
      "n,,n=us=2Ger,r=abc",          // bad escape
      "n,,n=user=,r=abc",            // truncated escape
      "n,,n=user=2,r=abc",
      "n,,n=user,r=abc,",            // trailing comma
      "n,,n=user,r=abc,,x=1",
      "n,,n=user,r=abc,x",           // extension without value
      "n,,n=user,r=abc,x=",
      "n,,n=user,r=abc,1=a",         // extension name not a letter
      "n,,n=user,r=abc,r=def",       // repeated attribute
      "n,,n=user,r=abc,p=x",         // proof in the first message
      "n,b=x,n=user,r=abc",          // authzid slot holds something else
      "n,a=,n=user,r=abc",
      "n,,n=us\xff" "er,r=abc",      // not UTF-8
      "n,,n=\xc3,r=abc",
      "n,,n=user,r=" + std::string(100'000, 'x'),
      "n,,n=" + std::string(4097, 'u') + ",r=abc",
      std::string(100'000, ','),
  };
  for (auto const& msg : bad) {
    CAPTURE(msg.substr(0, 60));
    auto m = detail::make_scram_sha256_server("S");
    check_failure(m->step(msg, true), sasl::errc::malformed);
    check_failure(m->step("n,,n=user,r=abc"), sasl::errc::protocol_error);
  }
  auto m = detail::make_scram_sha256_server("S");
  CHECK(m->step("n,,n=\xc3\xa9t\xc3\xa9,r=abc,x=\xe2\x82\xac", true).k == kind::need_scram_secret);
  CHECK(m->scram_user() == "\xc3\xa9t\xc3\xa9");
}

TEST_CASE("SCRAM-SHA-256 rejects bad client-final messages") {
  std::string const nonce(rfc_nonce);
  std::string const proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  struct bad_case {
    std::string msg;
    sasl::errc error;
  };
  bad_case const bad[] = {
      {"", sasl::errc::malformed},
      {"\0"s, sasl::errc::malformed},
      {"c=biws,r=" + nonce, sasl::errc::malformed},                          // no proof
      {"r=" + nonce + ",c=biws,p=" + proof, sasl::errc::malformed},          // wrong order
      {"c=biws,p=" + proof + ",r=" + nonce, sasl::errc::malformed},
      {"c=biws,r=" + nonce + ",p=" + proof + ",", sasl::errc::malformed},    // trailing comma
      {"c=biws,r=" + nonce + ",p=", sasl::errc::malformed},                  // empty proof
      {"c=biws,r=" + nonce + ",p=dHzbZapW", sasl::errc::malformed},          // short proof
      {"c=biws,r=" + nonce + ",p=" + proof.substr(1), sasl::errc::malformed},  // not base64
      {"c=biws,r=" + nonce + ",p=" + proof + "\r\n", sasl::errc::malformed},
      {"c=bi ws,r=" + nonce + ",p=" + proof, sasl::errc::malformed},
      {"c=biws,r=" + nonce + ",q,p=" + proof, sasl::errc::malformed},         // bad extension
      {"c=biws,r=" + nonce + ",c=biws,p=" + proof, sasl::errc::malformed},    // repeated attribute
      {"c=biws,r=" + nonce + ",p=" + proof + "\xff", sasl::errc::malformed},
      {"c=biws,r=" + nonce + ",x=" + std::string(100'000, 'x') + ",p=" + proof, sasl::errc::malformed},
      {"c=eSws,r=" + nonce + ",p=" + proof, sasl::errc::authentication_failed},  // gs2 header "y,,"
      {"c=" + base64::encode("n,a=user,") + ",r=" + nonce + ",p=" + proof, sasl::errc::authentication_failed},
      {"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" + proof, sasl::errc::authentication_failed},  // client nonce only
      {"c=biws,r=" + nonce + "x,p=" + proof, sasl::errc::authentication_failed},
      {"c=biws,r=" + nonce + ",p=" + base64::encode(std::string(32, '\0')), sasl::errc::authentication_failed},
  };
  for (auto const& [msg, error] : bad) {
    auto const shown = msg.substr(0, 80);  // clang 14 cannot capture structured bindings
    CAPTURE(shown);
    auto m = rfc_after_server_first();
    check_failure(m->step(msg), error);
    check_failure(m->step(rfc_client_final), sasl::errc::protocol_error);
  }
}

TEST_CASE("SCRAM-SHA-256 refuses calls in the wrong state") {
  SUBCASE("secret before client-first") {
    auto m = detail::make_scram_sha256_server("S");
    auto const secret = rfc_secret();
    check_failure(m->set_scram_secret(&secret), sasl::errc::protocol_error);
  }
  SUBCASE("step while the secret is awaited") {
    auto m = detail::make_scram_sha256_server("S");
    REQUIRE(m->step(rfc_client_first, true).k == kind::need_scram_secret);
    check_failure(m->step(rfc_client_first), sasl::errc::protocol_error);
  }
  SUBCASE("secret given twice") {
    auto m = rfc_after_server_first();
    check_failure(m->set_scram_secret(nullptr), sasl::errc::protocol_error);
  }
  SUBCASE("data in a first call that claims there is no initial response") {
    auto m = detail::make_scram_sha256_server("S");
    check_failure(m->step(rfc_client_first, false), sasl::errc::protocol_error);
  }
  SUBCASE("a backend secret without iterations or salt") {
    auto m = detail::make_scram_sha256_server("S");
    REQUIRE(m->step(rfc_client_first, true).k == kind::need_scram_secret);
    auto secret = rfc_secret();
    secret.iterations = 0;
    check_failure(m->set_scram_secret(&secret), sasl::errc::protocol_error);
    auto m2 = detail::make_scram_sha256_server("S");
    REQUIRE(m2->step(rfc_client_first, true).k == kind::need_scram_secret);
    secret = rfc_secret();
    secret.salt.clear();
    check_failure(m2->set_scram_secret(&secret), sasl::errc::protocol_error);
  }
  SUBCASE("password calls on SCRAM") {
    auto m = detail::make_scram_sha256_server("S");
    CHECK(m->pending_credentials() == nullptr);
    check_failure(m->password_checked(true), sasl::errc::protocol_error);
  }
}
