// DKIM: tag lists, signature and key records, canonicalisation (RFC 6376 3.4.5), the RFC 8463
// Appendix A message, sign/verify round trips with generated keys, tampering, and hostile input.
#include <doctest/doctest.h>

#include <mbedtls/version.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <ostream>
#include <string>
#include <vector>

#include "mailroom/core/base64.hpp"
#include "mailroom/filter/dkim.hpp"
#include "mailroom/net/dns/resolver.hpp"

using namespace mailroom;
namespace dkim = mailroom::filter::dkim;
using dkim::canonicalization;
using dkim::errc;
using dkim::status;

namespace doctest {
template <>
struct StringMaker<dkim::status> {
  static String convert(dkim::status s) { return String(std::string(dkim::to_string(s)).c_str()); }
};
}  // namespace doctest

namespace {

// RFC 8463 Appendix A.2 and A.3: the keys and the message signed with both algorithms.
constexpr char rfc8463_rsa_record[] =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
    "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+"
    "2kryOTIKT+l/K4w3QIDAQAB";
constexpr char rfc8463_ed25519_record[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char rfc8463_message[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

constexpr char plain_message[] =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: Lunch\r\n"
    " on Friday?\r\n"
    "Date: Thu, 03 Dec 2026 11:00:00 +0000\r\n"
    "Message-ID: <1@example.org>\r\n"
    "X-Unsigned: anything\r\n"
    "\r\n"
    "Hello Bob,  \r\n"
    "\r\n"
    "shall we\teat at noon?\r\n"
    "\r\n"
    "\r\n";

dkim::key_answer found(std::string record) { return {dkim::key_answer::outcome::found, {std::move(record)}}; }

// Feeds `msg` in pieces of `piece` octets, finishes, and verifies signature `index` with `key`.
dkim::verification verify_one(std::string_view msg, dkim::key_answer const& key, std::size_t index = 0,
                              std::size_t piece = 0, dkim::limits lim = {}, std::int64_t now = 1'800'000'000) {
  dkim::verifier v(lim, now);
  if (piece == 0) v.feed(msg);
  else
    for (std::size_t i = 0; i < msg.size(); i += piece) v.feed(msg.substr(i, piece));
  v.finish();
  return v.verify(index, key);
}

std::shared_ptr<dkim::private_key> test_key() {
  static auto key = dkim::private_key::generate_rsa(1024).value();
  return key;
}

std::string sign(std::string_view msg, dkim::sign_options o, std::shared_ptr<dkim::private_key const> key = test_key(),
                 std::size_t piece = 0) {
  dkim::signer s(std::move(o), std::move(key));
  if (piece == 0) s.feed(msg);
  else
    for (std::size_t i = 0; i < msg.size(); i += piece) s.feed(msg.substr(i, piece));
  auto h = s.finish();
  REQUIRE_MESSAGE(h, h.error().message());
  return *h;
}

dkim::sign_options options(canonicalization hc = canonicalization::relaxed,
                           canonicalization bc = canonicalization::relaxed) {
  dkim::sign_options o;
  o.domain = "example.org";
  o.selector = "sel2026";
  o.header_canon = hc;
  o.body_canon = bc;
  return o;
}

// A message signed with the test key, relaxed/relaxed.
std::string signed_plain(dkim::sign_options o = options()) { return sign(plain_message, std::move(o)) + plain_message; }

// An RSA public key of `bits` made by mbedTLS directly (the library refuses to make small ones),
// as base64 SubjectPublicKeyInfo.
std::string rsa_public_key_b64(unsigned bits) {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_pk_context pk;
  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  mbedtls_pk_init(&pk);
  REQUIRE(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, nullptr, 0) == 0);
  REQUIRE(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0);
  REQUIRE(mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg, bits, 65537) == 0);
  unsigned char buf[2048];
  int n = mbedtls_pk_write_pubkey_der(&pk, buf, sizeof buf);
  REQUIRE(n > 0);
  std::string der(reinterpret_cast<char*>(buf) + sizeof buf - n, static_cast<std::size_t>(n));
  mbedtls_pk_free(&pk);
  mbedtls_ctr_drbg_free(&drbg);
  mbedtls_entropy_free(&entropy);
  return base64::encode(der);
}

std::string replace(std::string s, std::string_view from, std::string_view to) {
  auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("tag lists: whitespace, trailing ';', and what is refused") {
  auto t = dkim::parse_tag_list(" v = 1 ;a=rsa-sha256;\r\n\th=from : to;  x= ;");
  REQUIRE(t);
  REQUIRE(t->size() == 4);
  CHECK((*t)[0].name == "v");
  CHECK((*t)[0].value == "1");
  CHECK((*t)[2].name == "h");
  CHECK((*t)[2].value == "from : to");
  CHECK((*t)[3].value.empty());
  CHECK(dkim::parse_tag_list("")->empty());

  CHECK(dkim::parse_tag_list("a=1; a=2").error() == errc::duplicate_tag);
  CHECK(dkim::parse_tag_list("a=1;;b=2").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("=1").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("a").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("1a=2").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("a=\x01").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("a=caf\xc3\xa9").error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list(std::string("a=b\0c", 5)).error() == errc::malformed_tag_list);
  CHECK(dkim::parse_tag_list("a b=1").error() == errc::malformed_tag_list);

  std::string many;
  for (int i = 0; i < 100; ++i) many += "t" + std::to_string(i) + "=x;";
  CHECK(dkim::parse_tag_list(many).error() == errc::too_many_tags);
  CHECK(dkim::parse_tag_list("a=" + std::string(70'000, 'x')).error() == errc::too_many_tags);
}

TEST_CASE("DKIM-Signature values: required tags and their checks") {
  std::string const good =
      "v=1; a=rsa-sha256; c=relaxed; d=Example.ORG; s=Sel; i=joe@sub.example.org; t=100; x=200; l=12; "
      "q=dns/txt; h=From:To : subject; bh=AAAA; b=AA AA";
  auto s = dkim::parse_signature(good, 150);
  REQUIRE_MESSAGE(s, s.error().message());
  CHECK(s->alg == dkim::algorithm::rsa_sha256);
  CHECK(s->header_canon == canonicalization::relaxed);
  CHECK(s->body_canon == canonicalization::simple);
  CHECK(s->domain == "example.org");
  CHECK(s->selector == "sel");
  CHECK(s->key_name() == "sel._domainkey.example.org");
  CHECK(s->signed_headers == std::vector<std::string>{"from", "to", "subject"});
  CHECK(s->identity == "joe@sub.example.org");
  CHECK(s->b_text == "AAAA");
  CHECK(s->b == std::string(3, '\0'));
  CHECK(*s->body_length == 12);
  CHECK(*s->timestamp == 100);

  CHECK(dkim::parse_signature(good, 201).error() == errc::expired);
  CHECK(dkim::parse_signature(replace(good, "x=200", "x=50"), 20).error() == errc::expired);
  CHECK(dkim::parse_signature(replace(good, "v=1", "v=2")).error() == errc::bad_version);
  CHECK(dkim::parse_signature(replace(good, "rsa-sha256", "rsa-md5")).error() == errc::unknown_algorithm);
  CHECK(dkim::parse_signature(replace(good, "c=relaxed", "c=relaxed/fancy")).error() == errc::bad_tag_value);
  CHECK(dkim::parse_signature(replace(good, "joe@sub.example.org", "joe@example.com")).error() ==
        errc::identity_mismatch);
  CHECK(dkim::parse_signature(replace(good, "joe@sub.example.org", "joe@badexample.org")).error() ==
        errc::identity_mismatch);
  CHECK(dkim::parse_signature(replace(good, "From:", "Sender:")).error() == errc::from_not_signed);
  CHECK(dkim::parse_signature(replace(good, "b=AA AA", "b=A*AA")).error() == errc::bad_base64);
  CHECK(dkim::parse_signature(replace(good, "bh=AAAA", "bh=AAA")).error() == errc::bad_base64);
  CHECK(dkim::parse_signature(replace(good, "q=dns/txt", "q=http")).error() == errc::bad_tag_value);
  CHECK(dkim::parse_signature(replace(good, "l=12", "l=-1")).error() == errc::bad_tag_value);
  CHECK(dkim::parse_signature(replace(good, "d=Example.ORG", "d=exa mple.org")).error() == errc::bad_tag_value);
  CHECK(dkim::parse_signature(replace(good, "h=From:To :", "h=From::")).error() == errc::bad_tag_value);
  for (auto tag : {"v=1; ", "a=rsa-sha256; ", "d=Example.ORG; ", "s=Sel; ", "bh=AAAA; "})
    CHECK(dkim::parse_signature(replace(good, tag, "")).error() == errc::missing_tag);
  CHECK(dkim::parse_signature(replace(good, "; b=AA AA", "")).error() == errc::missing_tag);
}

TEST_CASE("key records") {
  auto k = dkim::parse_key_record(rfc8463_rsa_record);
  REQUIRE(k);
  CHECK(k->type == dkim::key_type::rsa);
  CHECK(k->public_key.size() == 162);
  auto e = dkim::parse_key_record(rfc8463_ed25519_record);
  REQUIRE(e);
  CHECK(e->type == dkim::key_type::ed25519);
  CHECK(e->public_key.size() == 32);

  auto r = dkim::parse_key_record("v=DKIM1; p=; t=y:s; h=sha256; n=retired");
  REQUIRE(r);
  CHECK(r->public_key.empty());
  CHECK(r->testing);
  CHECK(r->strict_identity);
  CHECK(r->hashes == std::vector<std::string>{"sha256"});
  CHECK(dkim::parse_key_record("p=AAAA; v=DKIM1").error() == errc::bad_version);
  CHECK(dkim::parse_key_record("v=DKIM2; p=AAAA").error() == errc::bad_version);
  CHECK(dkim::parse_key_record("k=dsa; p=AAAA").error() == errc::unknown_algorithm);
  CHECK(dkim::parse_key_record("s=tlsrpt; p=AAAA").error() == errc::bad_key_record);
  CHECK(dkim::parse_key_record("s=tlsrpt:*; p=AAAA"));
  CHECK(dkim::parse_key_record("k=rsa").error() == errc::missing_tag);
  CHECK(dkim::parse_key_record("p=!!!!").error() == errc::bad_base64);
  CHECK(dkim::parse_key_record("p=AA; p=AA").error() == errc::duplicate_tag);
}

TEST_CASE("canonicalisation: the examples of RFC 6376 3.4.5") {
  std::string_view const a = "A: X", b = "B : Y\t\r\n\tZ  ";
  CHECK(dkim::canonicalize_header(canonicalization::relaxed, a) == "a:X");
  CHECK(dkim::canonicalize_header(canonicalization::relaxed, b) == "b:Y Z");
  CHECK(dkim::canonicalize_header(canonicalization::simple, b) == b);
  CHECK(dkim::canonicalize_header(canonicalization::relaxed, "Sub\r\n ject \t:\r\n  x ") == "sub ject:x");
  CHECK(dkim::canonicalize_header(canonicalization::relaxed, "No-Colon  ") == "no-colon");

  std::string_view const body = " C \r\nD \t E\r\n\r\n\r\n";
  CHECK(dkim::canonicalize_body(canonicalization::relaxed, body) == " C\r\nD E\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::simple, body) == " C \r\nD \t E\r\n");
}

TEST_CASE("canonicalisation: empty bodies, missing final CRLF, bare CR and LF, chunk boundaries") {
  CHECK(dkim::canonicalize_body(canonicalization::simple, "") == "\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::relaxed, "") == "");
  CHECK(dkim::canonicalize_body(canonicalization::simple, "\r\n\r\n") == "\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::relaxed, " \r\n\t\r\n") == "");
  CHECK(dkim::canonicalize_body(canonicalization::simple, "x") == "x\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::relaxed, "x  ") == "x\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::relaxed, "a\r\n \r\nb\r\n") == "a\r\n\r\nb\r\n");
  CHECK(dkim::canonicalize_body(canonicalization::simple, "a\rb\nc\r") == "a\rb\nc\r\r\n");

  // The streaming hasher gives the same digest whatever the chunking.
  std::string const body = "line one \t\r\n\r\n  two\r\n\r\r\n\r\n \r\n";
  for (auto c : {canonicalization::simple, canonicalization::relaxed}) {
    dkim::body_hasher whole(c, dkim::algorithm::rsa_sha256);
    whole.update(body);
    auto const expected = whole.finish();
    for (std::size_t piece = 1; piece < 6; ++piece) {
      dkim::body_hasher h(c, dkim::algorithm::rsa_sha256);
      for (std::size_t i = 0; i < body.size(); i += piece) h.update(std::string_view(body).substr(i, piece));
      CHECK(h.finish() == expected);
      CHECK(h.canonical_length() == dkim::canonicalize_body(c, body).size());
    }
  }
  // l= hashes a prefix of the canonical body.
  dkim::body_hasher limited(canonicalization::simple, dkim::algorithm::rsa_sha256, 3);
  limited.update("abcdef\r\n");
  dkim::body_hasher prefix(canonicalization::relaxed, dkim::algorithm::rsa_sha256);
  prefix.update("abc");
  auto const lim = limited.finish();
  CHECK(lim != prefix.finish());  // relaxed "abc" adds a CRLF
  dkim::body_hasher raw(canonicalization::simple, dkim::algorithm::rsa_sha256, 3);
  raw.update("abc\r\nmore");
  CHECK(raw.finish() == lim);
}

TEST_CASE("RFC 8463 Appendix A: the RSA signature verifies, the Ed25519 one is unsupported") {
  for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{13}}) {
    dkim::verifier v({}, 1'600'000'000);
    std::string_view msg = rfc8463_message;
    if (piece == 0) v.feed(msg);
    else
      for (std::size_t i = 0; i < msg.size(); i += piece) v.feed(msg.substr(i, piece));
    v.finish();
    REQUIRE(v.signatures().size() == 2);
    CHECK(v.signatures()[0].key_name == "brisbane._domainkey.football.example.com");
    CHECK(v.signatures()[1].key_name == "test._domainkey.football.example.com");

    auto rsa = v.verify(1, found(rfc8463_rsa_record));
    CHECK_MESSAGE(rsa.status == status::pass, rsa.reason);
    CHECK(dkim::format_result(rsa) ==
          "dkim=pass header.d=football.example.com header.s=test header.b=F45dVWDf");

    auto ed = v.verify(0, found(rfc8463_ed25519_record));
    CHECK(ed.status == status::neutral);
    CHECK(ed.why == errc::unsupported_algorithm);
    CHECK(ed.reason.find("body hash matched") != std::string::npos);
    CHECK(dkim::format_result(ed).starts_with("dkim=neutral reason=\"unsupported algorithm"));
    CHECK(dkim::format_result(ed).ends_with("header.b=\"/gCrinpc\""));
  }
  // The body hash itself, computed apart from the verifier.
  std::string_view const msg = rfc8463_message;
  dkim::body_hasher h(canonicalization::relaxed, dkim::algorithm::ed25519_sha256);
  h.update(msg.substr(msg.find("\r\n\r\n") + 4));
  CHECK(base64::encode(h.finish()) == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");

  // The Ed25519 signature over a changed body fails on the body hash.
  auto ed = verify_one(replace(rfc8463_message, "hungry", "thirsty"), found(rfc8463_ed25519_record));
  CHECK(ed.status == status::fail);
  CHECK(ed.why == errc::body_hash_mismatch);
  auto rsa = verify_one(replace(rfc8463_message, "Subject: Is dinner", "Subject: Is lunch"), found(rfc8463_rsa_record), 1);
  CHECK(rsa.status == status::fail);
  CHECK(rsa.why == errc::signature_mismatch);
  // Keys of the other type.
  CHECK(verify_one(rfc8463_message, found(rfc8463_rsa_record), 0).why == errc::key_type_mismatch);
  CHECK(verify_one(rfc8463_message, found(rfc8463_ed25519_record), 1).why == errc::key_type_mismatch);
}

TEST_CASE("sign then verify: each canonicalisation, chunked input, folded output") {
  auto const record = test_key()->key_record();
  CHECK(record.starts_with("v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ"));
  for (auto hc : {canonicalization::simple, canonicalization::relaxed})
    for (auto bc : {canonicalization::simple, canonicalization::relaxed})
      for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{9}}) {
        CAPTURE(piece);
        auto const header = sign(plain_message, options(hc, bc), test_key(), piece);
        CHECK(header.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=" + std::string(dkim::to_string(hc)) + "/" +
                                 std::string(dkim::to_string(bc)) + "; d=example.org;"));
        CHECK(header.find("s=sel2026;") != std::string::npos);
        CHECK(header.ends_with("\r\n"));
        std::size_t line_start = 0;
        for (auto crlf = header.find("\r\n"); crlf != std::string::npos; crlf = header.find("\r\n", line_start)) {
          CHECK(crlf - line_start <= 78);
          line_start = crlf + 2;
        }
        auto const msg = header + plain_message;
        auto r = verify_one(msg, found(record), 0, piece);
        CHECK_MESSAGE(r.status == status::pass, r.reason);
        CHECK(r.domain == "example.org");
        CHECK(r.selector == "sel2026");
      }
}

TEST_CASE("signing: h= lists present fields, From oversigned, t= x= i= l=") {
  auto o = options();
  o.timestamp = 1'700'000'000;
  o.expiration = 1'900'000'000;
  o.identity = "alice@mail.example.org";
  auto const header = sign(plain_message, o);
  std::string unfolded;
  for (char c : header)
    if (c != '\r' && c != '\n' && c != '\t') unfolded += c;
  CHECK(unfolded.find("h=from:to:subject:date:message-id:from;") != std::string::npos);
  CHECK(unfolded.find("t=1700000000; x=1900000000;") != std::string::npos);
  CHECK(unfolded.find("i=alice@mail.example.org;") != std::string::npos);
  auto const msg = header + plain_message;
  auto const record = test_key()->key_record();
  CHECK(verify_one(msg, found(record)).status == status::pass);
  CHECK(verify_one(msg, found(record), 0, 0, {}, 1'950'000'000).why == errc::expired);

  // A From added above after signing breaks the oversigned signature.
  auto r = verify_one(header + "From: mallory@example.com\r\n" + plain_message, found(record));
  CHECK(r.status == status::fail);
  CHECK(r.why == errc::signature_mismatch);
  // A field that is not signed may be added.
  CHECK(verify_one(header + "X-Unsigned: again\r\n" + plain_message, found(record)).status == status::pass);

  // l=: text appended to the body is ignored; the signature covers what it covers.
  o.body_length = true;
  auto const with_l = sign(plain_message, o) + plain_message;
  CHECK(verify_one(with_l + "appended\r\n", found(record)).status == status::pass);
  CHECK(verify_one(with_l.substr(0, with_l.size() - 12) + "\r\n", found(record)).why == errc::body_length_exceeds);

  // Option errors.
  auto bad = options();
  bad.identity = "a@example.com";
  dkim::signer s1(bad, test_key());
  s1.feed(plain_message);
  CHECK(s1.finish().error() == errc::identity_mismatch);
  dkim::signer s2(options(), test_key());
  s2.feed("To: x@example.net\r\n\r\nbody\r\n");
  CHECK(s2.finish().error() == errc::no_from);
  dkim::limits few;
  few.max_header_fields = 3;
  dkim::signer s4(options(), test_key(), few);
  s4.feed(plain_message);
  CHECK(s4.finish().error() == errc::too_many_fields);
  bad = options();
  bad.domain = "bad domain";
  dkim::signer s3(bad, test_key());
  s3.feed(plain_message);
  CHECK(s3.finish().error() == errc::bad_tag_value);
}

TEST_CASE("tampering and key problems give the right result and reason") {
  auto const msg = signed_plain();
  auto const record = test_key()->key_record();
  REQUIRE(verify_one(msg, found(record)).status == status::pass);

  auto body = verify_one(replace(msg, "noon", "one"), found(record));
  CHECK(body.status == status::fail);
  CHECK(body.why == errc::body_hash_mismatch);
  CHECK(dkim::format_result(body).starts_with("dkim=fail reason=\"body hash mismatch\" header.d=example.org"));
  // Relaxed body canonicalisation: whitespace changes do not matter.
  CHECK(verify_one(replace(msg, "shall we\teat", "shall  we eat"), found(record)).status == status::pass);

  auto head = verify_one(replace(msg, "Subject: Lunch", "Subject: Dinner"), found(record));
  CHECK(head.status == status::fail);
  CHECK(head.why == errc::signature_mismatch);
  CHECK(dkim::format_result(head).starts_with("dkim=fail reason=\"signature did not verify\""));

  auto other = dkim::private_key::generate_rsa(1024).value();
  CHECK(verify_one(msg, found(other->key_record())).why == errc::signature_mismatch);

  using outcome = dkim::key_answer::outcome;
  auto nx = verify_one(msg, {outcome::not_found, {}});
  CHECK(nx.status == status::permerror);
  CHECK(nx.why == errc::key_not_found);
  auto temp = verify_one(msg, {outcome::temporary_failure, {}});
  CHECK(temp.status == status::temperror);
  CHECK(dkim::format_result(temp).starts_with("dkim=temperror"));
  CHECK(verify_one(msg, found("v=DKIM1; k=rsa; p=")).why == errc::key_revoked);
  CHECK(verify_one(msg, found("v=DKIM1; k=rsa; h=sha1; " + record.substr(16))).why == errc::key_type_mismatch);
  CHECK(verify_one(msg, found("v=DKIM1; p=QUJD")).why == errc::bad_key);
  CHECK(verify_one(msg, found("garbage")).status == status::permerror);
  // What the resolver gives, mapped.
  namespace dns = net::dns;
  using lookup = result<std::vector<std::string>>;
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(std::vector<std::string>{record}))).status ==
        status::pass);
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(std::vector<std::string>{}))).why == errc::key_not_found);
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(fail(dns::errc::nxdomain)))).why == errc::key_not_found);
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(fail(dns::errc::no_data)))).why == errc::key_not_found);
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(fail(dns::errc::timeout)))).status == status::temperror);
  CHECK(verify_one(msg, dkim::key_answer::from_lookup(lookup(fail(dns::errc::servfail)))).status == status::temperror);
  // Among several records, the first usable one is the key.
  CHECK(verify_one(msg, {outcome::found, {"not a key", record}}).status == status::pass);
  // t=y is reported; t=s refuses an i= in a subdomain.
  auto testing = verify_one(msg, found(record + "; t=y"));
  CHECK(testing.status == status::pass);
  CHECK(testing.testing);
  auto o = options();
  o.identity = "@mail.example.org";
  auto const sub = sign(plain_message, o) + plain_message;
  CHECK(verify_one(sub, found(record + "; t=s")).why == errc::identity_mismatch);
  CHECK(verify_one(sub, found(record)).status == status::pass);

  // rsa-sha1 is refused whatever the key says.
  auto sha1 = verify_one(replace(msg, "a=rsa-sha256", "a=rsa-sha1"), found(record));
  CHECK(sha1.status == status::permerror);
  CHECK(sha1.why == errc::sha1_refused);
}

TEST_CASE("absurd key sizes") {
  auto const msg = signed_plain();
  auto small = verify_one(msg, found("v=DKIM1; k=rsa; p=" + rsa_public_key_b64(512)));
  CHECK(small.status == status::policy);
  CHECK(small.why == errc::key_too_small);
  auto huge = verify_one(msg, found("v=DKIM1; k=rsa; p=" + base64::encode(std::string(20'000, 'k'))));
  CHECK(huge.status == status::permerror);
  CHECK(huge.why == errc::key_too_large);
  CHECK(dkim::private_key::generate_rsa(512).error() == errc::key_too_small);
  CHECK(dkim::private_key::generate_rsa(100'000).error() == errc::key_too_large);
  CHECK(dkim::private_key::load_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n").error() ==
        errc::bad_private_key);
  // A PEM written by the library loads back and signs what the original verifies.
  auto again = dkim::private_key::load_pem(test_key()->private_pem());
  REQUIRE(again);
  CHECK((*again)->bits() == 1024);
  auto const msg2 = sign(plain_message, options(), *again) + plain_message;
  CHECK(verify_one(msg2, found(test_key()->key_record())).status == status::pass);
}

TEST_CASE("hostile messages are bounded") {
  auto const record = test_key()->key_record();
  auto const header = sign(plain_message, options());

  SUBCASE("10,000 header fields") {
    std::string many;
    for (int i = 0; i < 10'000; ++i) many += "X-Filler: " + std::to_string(i) + "\r\n";
    auto const msg = header + many + plain_message;
    dkim::verifier v({}, 1'800'000'000);
    v.feed(msg);
    v.finish();
    CHECK(v.error() == errc::too_many_fields);
    auto r = v.verify(0, found(record));
    CHECK(r.status == status::permerror);
    CHECK(r.why == errc::too_many_fields);
    dkim::limits roomy;
    roomy.max_header_fields = 20'000;
    CHECK(verify_one(msg, found(record), 0, 4096, roomy).status == status::pass);
  }
  SUBCASE("a 1 MB header field") {
    auto const msg = header + "X-Big: " + std::string(1024 * 1024, 'a') + "\r\n" + plain_message;
    dkim::verifier v({}, 1'800'000'000);
    for (std::size_t i = 0; i < msg.size(); i += 65536) v.feed(std::string_view(msg).substr(i, 65536));
    v.finish();
    CHECK(v.error() == errc::header_too_large);
    CHECK(v.signatures().empty());
    CHECK(dkim::format_result(v.verify(0, found(record))) == "dkim=permerror reason=\"message header too large\"");
  }
  SUBCASE("a message without an empty line, and an empty message") {
    dkim::verifier v({}, 1'800'000'000);
    v.feed(header + "From: a@example.org\r\n");
    v.finish();
    REQUIRE(v.signatures().size() == 1);
    CHECK(v.verify(0, found(record)).status == status::fail);
    dkim::verifier e;
    e.finish();
    CHECK(e.signatures().empty());
  }
  SUBCASE("a huge h= list") {
    std::string h = "from";
    for (int i = 0; i < 5000; ++i) h += ":x-h" + std::to_string(i);
    auto const msg = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; bh=AAAA; b=AAAA; h=" + h + "\r\n" +
                     std::string(plain_message);
    auto r = verify_one(msg, found(record));
    CHECK(r.status == status::permerror);
    CHECK(r.why == errc::too_many_tags);
  }
  SUBCASE("bad base64 and malformed signatures") {
    auto r = verify_one(replace(header + plain_message, "b=", "b=*"), found(record));
    CHECK(r.status == status::permerror);
    CHECK(r.why == errc::bad_base64);
    auto d = verify_one("DKIM-Signature: v=1; v=1\r\n" + std::string(plain_message), found(record));
    CHECK(d.why == errc::duplicate_tag);
    auto g = verify_one("DKIM-Signature: \x01\x02\xff\r\n" + std::string(plain_message), found(record));
    CHECK(g.why == errc::malformed_tag_list);
    CHECK(verify_one(plain_message, found(record), 3).status == status::permerror);
  }
  SUBCASE("at most limits::max_signatures signatures are evaluated") {
    std::string sigs;
    for (int i = 0; i < 7; ++i) sigs += header;
    dkim::verifier v({}, 1'800'000'000);
    v.feed(sigs + plain_message);
    v.finish();
    REQUIRE(v.signatures().size() == 7);
    for (std::size_t i = 0; i < 5; ++i) CHECK(v.verify(i, found(record)).status == status::pass);
    auto r = v.verify(5, found(record));
    CHECK(r.status == status::neutral);
    CHECK(r.why == errc::too_many_signatures);
    CHECK(v.signatures()[6].key_name.empty());
  }
}

TEST_CASE("format_result quotes and escapes") {
  dkim::verification v;
  v.status = status::permerror;
  v.reason = "bad \"thing\"\\\x01";
  v.domain = "example.org";
  v.selector = "s1";
  v.b_text = "ab+c/defgh";
  CHECK(dkim::format_result(v) ==
        "dkim=permerror reason=\"bad \\\"thing\\\"\\\\?\" header.d=example.org header.s=s1 header.b=\"ab+c/def\"");
  CHECK(dkim::format_result(dkim::verification{}) == "dkim=none");
}

TEST_CASE("signing table: the current selector per domain, rotation") {
  dkim::signing_table t;
  auto k1 = test_key();
  auto k2 = dkim::private_key::generate_rsa(1024).value();
  CHECK(t.find("example.org") == nullptr);
  t.add("Example.ORG", "old", k1);
  REQUIRE(t.find("example.org."));
  CHECK(t.find("example.org")->selector == "old");
  t.add("example.org", "new", k2, false);
  CHECK(t.find("EXAMPLE.org")->selector == "old");
  REQUIRE(t.make_current("example.org", "new"));
  CHECK(t.find("example.org")->selector == "new");
  CHECK(t.find("example.org")->key == k2);
  CHECK(t.make_current("example.org", "nope").error() == errc::key_not_found);
  CHECK(t.selectors("example.org").size() == 2);
  t.remove("example.org", "new");
  CHECK(t.find("example.org")->selector == "old");
  t.remove("example.org", "old");
  CHECK(t.find("example.org") == nullptr);
  CHECK(t.find("other.example") == nullptr);

  // The current entry signs, and the verifier finds its key under the right name.
  t.add("example.org", "rot2", k2);
  auto const* e = t.find("example.org");
  auto o = options();
  o.selector = e->selector;
  auto const msg = sign(plain_message, o, e->key) + plain_message;
  dkim::verifier v({}, 1'800'000'000);
  v.feed(msg);
  v.finish();
  REQUIRE(v.signatures().size() == 1);
  CHECK(v.signatures()[0].key_name == "rot2._domainkey.example.org");
  CHECK(v.verify(0, found(k2->key_record())).status == status::pass);
}
