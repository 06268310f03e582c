// TLS over loopback TCP: handshakes with generated certificates, verification outcomes, SNI
// selection, bulk data in both directions at once, close_notify, deadlines, hostile peers, and
// the generated certificate as OpenSSL sees it.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <mbedtls/ssl.h>

#include "mailroom/core/error.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "net/tls/detail/mbedtls.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
namespace tls = mailroom::net::tls;

namespace {

using stream_ptr = std::unique_ptr<net::stream>;

tls::key_pair make_cert(std::vector<std::string> const& names) {
  auto kp = tls::generate_self_signed(names, 30);
  REQUIRE(kp);
  return *kp;
}

std::shared_ptr<tls::server_context> make_server(tls::key_pair const& kp) {
  auto ctx = tls::server_context::create(kp);
  REQUIRE(ctx);
  return *ctx;
}

std::shared_ptr<tls::client_context> trusting(tls::verify_mode mode, tls::key_pair const& anchor) {
  auto ctx = tls::client_context::create_with_trust(mode, anchor.cert_pem);
  REQUIRE(ctx);
  return *ctx;
}

struct handshake_outcome {
  result<stream_ptr> client;
  result<stream_ptr> server;
};

task<handshake_outcome> both_sides(std::shared_ptr<tls::client_context> cctx, std::shared_ptr<tls::server_context> sctx,
                                   std::string name, stream_ptr c, stream_ptr s) {
  auto [cr, sr] = co_await (tls::connect(cctx, std::move(c), name) && tls::accept(sctx, std::move(s)));
  co_return handshake_outcome{std::move(cr), std::move(sr)};
}

handshake_outcome handshake(asio::io_context& io, std::shared_ptr<tls::client_context> cctx,
                            std::shared_ptr<tls::server_context> sctx, std::string const& name) {
  auto [c, s] = testing::tcp_pair(io);
  return testing::run(io, both_sides(std::move(cctx), std::move(sctx), name, std::move(c), std::move(s)));
}

// A client that trusts only `anchor` and insists on it: succeeds exactly when the server presents it.
bool server_presents(asio::io_context& io, std::shared_ptr<tls::server_context> sctx, tls::key_pair const& anchor,
                     std::string const& name) {
  auto out = handshake(io, trusting(tls::verify_mode::required, anchor), std::move(sctx), name);
  if (!out.client) CHECK(out.client.error() == tls::errc::verify_failed);
  return out.client.has_value();
}

task<result<std::string>> read_exactly(net::stream& s, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    auto r = co_await s.read_some(std::span<char>(out.data() + got, n - got));
    if (!r) co_return fail(r.error());
    got += *r;
  }
  co_return out;
}

// An established, verified TLS connection over loopback TCP.
struct established {
  established() {
    auto kp = make_cert({"mail.example.org"});
    auto out = handshake(io, trusting(tls::verify_mode::required, kp), make_server(kp), "mail.example.org");
    REQUIRE(out.client);
    REQUIRE(out.server);
    client_ptr = std::move(*out.client);
    server_ptr = std::move(*out.server);
  }

  asio::io_context io;
  stream_ptr client_ptr, server_ptr;
};

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed) % 251);
  return s;
}

bool have_openssl() { return std::system("command -v openssl >/dev/null 2>&1") == 0; }

// Runs a shell command, returning its exit status and combined output.
std::pair<int, std::string> shell(std::string const& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int const status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void write_file(std::string const& path, std::string const& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  REQUIRE(f);
}

}  // namespace

TEST_CASE("tls: handshake with a generated certificate, client not verifying") {
  asio::io_context io;
  auto kp = make_cert({"mail.example.org"});
  auto cctx = tls::client_context::create_with_trust(tls::verify_mode::none, make_cert({"other.example"}).cert_pem);
  REQUIRE(cctx);
  auto out = handshake(io, *cctx, make_server(kp), "mail.example.org");
  REQUIRE(out.client);
  REQUIRE(out.server);
  auto const* cd = (*out.client)->tls();
  auto const* sd = (*out.server)->tls();
  REQUIRE(cd);
  REQUIRE(sd);
  CHECK(cd->version == "TLSv1.2");
  CHECK(sd->version == "TLSv1.2");
  CHECK(cd->cipher.find("ECDSA") != std::string::npos);  // the only suites an EC key can serve
  CHECK(cd->cipher == sd->cipher);
  CHECK(cd->server_name == "mail.example.org");
  CHECK(sd->server_name == "mail.example.org");
}

TEST_CASE("tls: client verification against a trust anchor") {
  asio::io_context io;
  auto kp = make_cert({"mail.example.org", "smtp.example.org"});
  auto sctx = make_server(kp);

  SUBCASE("the certificate's names verify, by CN and by subjectAltName") {
    CHECK(handshake(io, trusting(tls::verify_mode::required, kp), sctx, "mail.example.org").client);
    CHECK(handshake(io, trusting(tls::verify_mode::required, kp), sctx, "smtp.example.org").client);
  }
  SUBCASE("another name fails verification, and the server sees a failed handshake") {
    auto out = handshake(io, trusting(tls::verify_mode::required, kp), sctx, "imap.example.org");
    REQUIRE_FALSE(out.client);
    CHECK(out.client.error() == tls::errc::verify_failed);
    CHECK(out.client.error().category().name() == std::string("mailroom.tls"));
    REQUIRE_FALSE(out.server);
    CHECK(out.server.error() != tls::errc::verify_failed);
  }
  SUBCASE("an untrusted certificate fails when required and passes when optional") {
    auto other = make_cert({"mail.example.org"});
    auto out = handshake(io, trusting(tls::verify_mode::required, other), sctx, "mail.example.org");
    REQUIRE_FALSE(out.client);
    CHECK(out.client.error() == tls::errc::verify_failed);
    CHECK(handshake(io, trusting(tls::verify_mode::optional, other), sctx, "mail.example.org").client);
  }
}

TEST_CASE_FIXTURE(established, "tls: data in both directions at once, more each way than socket buffers hold") {
  auto& client = *client_ptr;
  auto& server = *server_ptr;
  std::size_t const size = 16 * 1024 * 1024;
  std::string const up = pattern(size, 7), down = pattern(size, 11);

  testing::run(io, [&]() -> task<void> {
    auto [cw, cr, sw, sr] = co_await (client.write(std::string_view(up)) && read_exactly(client, size) &&
                                      server.write(std::string_view(down)) && read_exactly(server, size));
    CHECK(cw);
    CHECK(sw);
    REQUIRE(cr);
    REQUIRE(sr);
    CHECK(*sr == up);
    CHECK(*cr == down);
    // Small exchanges still work afterwards.
    CHECK(co_await client.write(std::string_view("QUIT\r\n")));
    CHECK((co_await read_exactly(server, 6)).value() == "QUIT\r\n");
  }());
}

TEST_CASE_FIXTURE(established, "tls: close_notify reads as end of stream; the closing side can no longer write") {
  auto& client = *client_ptr;
  auto& server = *server_ptr;

  testing::run(io, [&]() -> task<void> {
    CHECK(co_await client.write(std::string_view("221 bye\r\n")));
    co_await client.shutdown();
    CHECK((co_await read_exactly(server, 9)).value() == "221 bye\r\n");
    char buf[64];
    auto eof = co_await server.read_some(buf);
    REQUIRE_FALSE(eof);
    CHECK(eof.error() == net::errc::eof);
    auto again = co_await server.read_some(buf);
    REQUIRE_FALSE(again);
    CHECK(again.error() == net::errc::eof);
    auto late = co_await client.write(std::string_view("more"));
    REQUIRE_FALSE(late);
    CHECK(late.error() == tls::errc::closed);
  }());
}

TEST_CASE_FIXTURE(established, "tls: a read with nothing arriving ends with the lower stream's timeout") {
  auto& server = *server_ptr;
  server.set_timeouts({100ms, 1s});

  auto const started = std::chrono::steady_clock::now();
  testing::run(io, [&]() -> task<void> {
    char buf[16];
    auto r = co_await server.read_some(buf);
    REQUIRE_FALSE(r);
    CHECK(r.error() == net::errc::timeout);
  }());
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE_FIXTURE(established, "tls: cancel() ends a pending read and leaves the stream usable") {
  auto& client = *client_ptr;
  auto& server = *server_ptr;

  testing::run(io, [&]() -> task<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
    timer.async_wait([&](std::error_code) { server.cancel(); });
    char buf[16];
    auto r = co_await server.read_some(buf);
    REQUIRE_FALSE(r);
    CHECK(r.error() == asio::error::operation_aborted);
    CHECK(co_await client.write(std::string_view("NOOP\r\n")));
    CHECK((co_await read_exactly(server, 6)).value() == "NOOP\r\n");
  }());
}

TEST_CASE("tls: handshake deadline comes from the lower stream") {
  asio::io_context io;
  auto [c, s] = testing::tcp_pair(io);
  s->set_timeouts({100ms, 1s});
  auto r = testing::run(io, tls::accept(make_server(make_cert({"mail.example.org"})), std::move(s)));
  REQUIRE_FALSE(r);
  CHECK(r.error() == net::errc::timeout);
}

TEST_CASE("tls: SNI selects among the registered certificates") {
  asio::io_context io;
  auto fallback = make_cert({"default.example", "unknown.example", "a.b.example.net"});
  auto mail = make_cert({"mail.example.org"});
  auto wildcard = make_cert({"*.example.net"});
  auto sctx = make_server(fallback);
  REQUIRE(sctx->add_sni_certificate("mail.example.org", mail));
  REQUIRE(sctx->add_sni_certificate("*.example.net", wildcard));

  CHECK(server_presents(io, sctx, mail, "mail.example.org"));
  CHECK(server_presents(io, sctx, mail, "MAIL.Example.ORG"));
  CHECK(server_presents(io, sctx, wildcard, "smtp.example.net"));
  CHECK_FALSE(server_presents(io, sctx, wildcard, "a.b.example.net"));  // a wildcard covers one label
  CHECK(server_presents(io, sctx, fallback, "a.b.example.net"));
  CHECK(server_presents(io, sctx, fallback, "unknown.example"));
  CHECK(server_presents(io, sctx, fallback, "default.example"));
  CHECK_FALSE(server_presents(io, sctx, mail, "unknown.example"));

  CHECK(sctx->add_sni_certificate("bad,name", mail).error() == errc::invalid_argument);
  CHECK(sctx->add_sni_certificate("x.example", {mail.cert_pem, wildcard.key_pem}).error() ==
        tls::errc::bad_certificate);
}

TEST_CASE("tls: contexts are shared by connections on several threads") {
  auto kp = make_cert({"mail.example.org"});
  auto sctx = make_server(kp);
  auto cctx = trusting(tls::verify_mode::required, kp);
  std::atomic<int> exchanged{0};
  auto worker = [&] {
    asio::io_context io;
    for (int i = 0; i < 4; ++i) {
      auto out = handshake(io, cctx, sctx, "mail.example.org");
      if (!out.client || !out.server) continue;
      auto got = testing::run(io, [&]() -> task<result<std::string>> {
        if (auto w = co_await (*out.client)->write(std::string_view("PING")); !w) co_return fail(w.error());
        co_return co_await read_exactly(**out.server, 4);
      }());
      if (got && *got == "PING") ++exchanged;
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  CHECK(exchanged == 8);
}

TEST_CASE("tls: SNI name matching") {
  using tls::detail::sni_matches;
  CHECK(sni_matches("mail.example.org", "MAIL.example.org"));
  CHECK_FALSE(sni_matches("mail.example.org", "mail.example.org."));
  CHECK(sni_matches("*.example.org", "a.example.org"));
  CHECK(sni_matches("*.Example.org", "A.EXAMPLE.ORG"));
  CHECK_FALSE(sni_matches("*.example.org", "example.org"));
  CHECK_FALSE(sni_matches("*.example.org", ".example.org"));
  CHECK_FALSE(sni_matches("*.example.org", "a.b.example.org"));
  CHECK_FALSE(sni_matches("*.example.org", "aexample.org"));
}

TEST_CASE("tls: a peer that does not speak TLS gets a handshake error") {
  asio::io_context io;
  auto kp = make_cert({"mail.example.org"});
  std::string const garbage = "GET / HTTP/1.1\r\nHost: mail.example.org\r\n\r\n" + std::string(300, 'x');

  SUBCASE("server receiving text instead of a ClientHello") {
    auto [c, s] = testing::tcp_pair(io);
    auto r = testing::run(io, [&, c = std::move(c), s = std::move(s)]() mutable -> task<result<stream_ptr>> {
      auto [w, a] = co_await (c->write(std::string_view(garbage)) && tls::accept(make_server(kp), std::move(s)));
      CHECK(w);
      co_return std::move(a);
    }());
    REQUIRE_FALSE(r);
    CHECK(r.error() == tls::errc::handshake_failed);
    CHECK_FALSE(r.error().message().empty());
  }
  SUBCASE("client receiving an SMTP greeting instead of a ServerHello") {
    std::string const greeting = "220 mail.example.org ESMTP ready\r\n" + garbage;
    auto [c, s] = testing::tcp_pair(io);
    auto r = testing::run(io, [&, c = std::move(c), s = std::move(s)]() mutable -> task<result<stream_ptr>> {
      auto [w, h] = co_await (s->write(std::string_view(greeting)) &&
                              tls::connect(trusting(tls::verify_mode::none, kp), std::move(c), "mail.example.org"));
      CHECK(w);
      co_return std::move(h);
    }());
    REQUIRE_FALSE(r);
    CHECK(r.error() == tls::errc::handshake_failed);
  }
  SUBCASE("a peer hanging up mid-handshake is end of stream") {
    auto [c, s] = testing::tcp_pair(io);
    c->close();
    auto r = testing::run(io, tls::accept(make_server(kp), std::move(s)));
    REQUIRE_FALSE(r);
    CHECK(r.error() == net::errc::eof);
  }
}

TEST_CASE("tls: certificates and keys are checked when loaded") {
  auto a = make_cert({"a.example"});
  auto b = make_cert({"b.example"});
  CHECK(tls::server_context::create({a.cert_pem, b.key_pem}).error() == tls::errc::bad_certificate);
  CHECK(tls::server_context::create({"not a certificate", a.key_pem}).error() == tls::errc::bad_certificate);
  CHECK(tls::server_context::create({a.cert_pem, ""}).error() == tls::errc::bad_certificate);
  CHECK(tls::client_context::create_with_trust(tls::verify_mode::required, "junk").error() ==
        tls::errc::bad_certificate);
  auto cctx = trusting(tls::verify_mode::required, a);
  CHECK(cctx->set_client_certificate({a.cert_pem, b.key_pem}).error() == tls::errc::bad_certificate);
  CHECK(cctx->set_client_certificate(b));

  CHECK_FALSE(tls::client_context::create(tls::verify_mode::required, "/nonexistent/ca.pem"));
  CHECK_FALSE(tls::client_context::create(tls::verify_mode::none, "/nonexistent/ca.pem"));

  testing::temp_dir dir;
  write_file(dir.path() + "/cert.pem", a.cert_pem);
  write_file(dir.path() + "/key.pem", a.key_pem);
  write_file(dir.path() + "/other.pem", b.key_pem);
  auto loaded = tls::load_key_pair(dir.path() + "/cert.pem", dir.path() + "/key.pem");
  REQUIRE(loaded);
  CHECK(loaded->cert_pem == a.cert_pem);
  CHECK(loaded->key_pem == a.key_pem);
  CHECK(tls::load_key_pair(dir.path() + "/cert.pem", dir.path() + "/other.pem").error() ==
        tls::errc::bad_certificate);
  CHECK(tls::load_key_pair(dir.path() + "/missing.pem", dir.path() + "/key.pem").error() ==
        std::errc::no_such_file_or_directory);

  // A trust bundle file works like trust given inline.
  auto from_file = tls::client_context::create(tls::verify_mode::required, dir.path() + "/cert.pem");
  REQUIRE(from_file);
  asio::io_context io;
  CHECK(handshake(io, *from_file, make_server(a), "a.example").client);
}

TEST_CASE("tls: generate_self_signed") {
  CHECK(tls::generate_self_signed({}).error() == errc::invalid_argument);
  CHECK(tls::generate_self_signed({"ok.example", "bad name"}).error() == errc::invalid_argument);
  CHECK(tls::generate_self_signed({"CN=evil,O=x"}).error() == errc::invalid_argument);
  CHECK(tls::generate_self_signed({"ok.example"}, 0).error() == errc::invalid_argument);

  auto kp = tls::generate_self_signed({"mail.example.org", "*.example.org", "smtp.example.net"}, 10);
  REQUIRE(kp);
  CHECK(kp->cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
  CHECK(kp->key_pem.find("PRIVATE KEY-----") != std::string::npos);
  auto again = tls::generate_self_signed({"mail.example.org"});
  REQUIRE(again);
  CHECK(again->key_pem != kp->key_pem);

  if (!have_openssl()) {
    MESSAGE("openssl not found; skipping the OpenSSL parse check");
    return;
  }
  testing::temp_dir dir;
  write_file(dir.path() + "/cert.pem", kp->cert_pem);
  write_file(dir.path() + "/key.pem", kp->key_pem);
  auto const parsed = shell("openssl x509 -noout -text -in " + dir.path() + "/cert.pem");
  std::string const& text = parsed.second;
  INFO(text);
  REQUIRE(parsed.first == 0);
  CHECK(text.find("Subject: CN = mail.example.org") != std::string::npos);
  CHECK(text.find("Issuer: CN = mail.example.org") != std::string::npos);
  CHECK(text.find("DNS:mail.example.org, DNS:*.example.org, DNS:smtp.example.net") != std::string::npos);
  CHECK(text.find("prime256v1") != std::string::npos);
  CHECK(text.find("ecdsa-with-SHA256") != std::string::npos);
  // Valid now, expired after the requested 10 days.
  CHECK(shell("openssl x509 -noout -checkend 60 -in " + dir.path() + "/cert.pem").first == 0);
  CHECK(shell("openssl x509 -noout -checkend 864060 -in " + dir.path() + "/cert.pem").first != 0);
  CHECK(shell("openssl pkey -noout -check -in " + dir.path() + "/key.pem").first == 0);
  // The signature verifies with the certificate's own key.
  auto const verified = shell("openssl verify -partial_chain -CAfile " + dir.path() + "/cert.pem " + dir.path() +
                              "/cert.pem");
  INFO(verified.second);
  CHECK(verified.first == 0);
}

TEST_CASE("tls: error category") {
  CHECK(std::string(tls::category().name()) == "mailroom.tls");
  std::error_code const ec(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, tls::category());
  CHECK(ec.message().find("SSL") != std::string::npos);
  CHECK(std::error_code(tls::errc::verify_failed).message() != std::error_code(tls::errc::handshake_failed).message());
}
