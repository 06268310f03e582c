// SASL client mechanisms: SCRAM-SHA-256 replays RFC 7677 byte for byte and completes against our
// server mechanism; a server without the password, or with a tampered or hostile message, is
// refused; PLAIN and LOGIN send what the RFCs say.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mailroom/core/base64.hpp"
#include "mailroom/sasl/client.hpp"
#include "mailroom/sasl/server.hpp"
#include "sasl/detail/client_mechanisms.hpp"

extern char** environ;

using namespace mailroom;
using namespace std::string_literals;
using kind = sasl::step_result::kind;

namespace {

// RFC 7677 section 3.
constexpr std::string_view rfc_client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

sasl::credentials creds(std::string user, std::string password, std::string authzid = {}) {
  sasl::credentials c;
  c.authcid = std::move(user);
  c.password = std::move(password);
  c.authzid = std::move(authzid);
  return c;
}

std::unique_ptr<sasl::client_mechanism> rfc_client() {
  return sasl::detail::make_scram_sha256_client(creds("user", "pencil"), "rOprNGfwEbeRWgbNEkqO");
}

// Runs a client against a server mechanism that knows `secret_password` for `user`.
bool exchange(sasl::client_mechanism& c, std::string const& user, std::string const& secret_password) {
  auto s = sasl::make_server_mechanism(c.name());
  REQUIRE(s);
  auto ir = c.initial_response();
  auto step = (*s)->step(ir.value_or(""), ir.has_value());
  auto const secret = sasl::make_scram_secret(secret_password, "0123456789abcdef", 4096);
  for (int round = 0; round < 10; ++round) {
    switch (step.k) {
      case kind::need_scram_secret:
        step = (*s)->set_scram_secret((*s)->scram_user() == user ? &secret : nullptr);
        break;
      case kind::check_password: {
        auto const* p = (*s)->pending_credentials();
        step = (*s)->password_checked(p->authcid == user && p->password == secret_password);
        break;
      }
      case kind::challenge: {
        auto answer = c.respond(step.data);
        if (!answer) return false;
        step = (*s)->step(*answer);
        break;
      }
      case kind::success:
        if (!step.data.empty()) {
          auto answer = c.respond(step.data);
          if (!answer || !answer->empty()) return false;
        }
        return c.complete();
      case kind::failure:
        return false;
    }
  }
  return false;
}

/// GNU SASL's command-line server (Debian package gsasl): a SCRAM-SHA-256 implementation nobody
/// here wrote. It prints the mechanism name, then each server challenge as a base64 line, and
/// reads the client's responses as base64 lines on stdin; exit code 0 means the client was
/// authenticated.
class gsasl_server {
 public:
  static std::string const& binary() {
    static std::string const path = [] {
      for (char const* p : {"/usr/bin/gsasl", "/usr/local/bin/gsasl"})
        if (::access(p, X_OK) == 0) return std::string(p);
      return std::string();
    }();
    return path;
  }
  static bool available() { return !binary().empty(); }

  gsasl_server(std::string user, std::string password) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> args = {binary(), "--server", "-m", "SCRAM-SHA-256", "-a", user, "-p", password, "--no-cb"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    if (rc != 0) throw std::runtime_error(std::string("cannot run gsasl: ") + std::strerror(rc));
  }
  ~gsasl_server() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  gsasl_server(gsasl_server const&) = delete;
  gsasl_server& operator=(gsasl_server const&) = delete;

  /// The next line without its LF; nullopt at EOF or after 10 s of silence.
  std::optional<std::string> read_line() {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) return std::nullopt;
      char tmp[4096];
      auto n = ::read(from_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  void write_line(std::string const& s) {
    std::string const l = s + "\n";
    REQUIRE(::write(to_, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
  }
  /// Closes its stdin and returns its exit code.
  int finish() {
    ::close(to_);
    to_ = -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buf_;
};

}  // namespace

TEST_CASE("SCRAM-SHA-256 client against GNU SASL's server (gsasl)" * doctest::skip(!gsasl_server::available())) {
  for (bool right : {true, false}) {
    CAPTURE(right);
    gsasl_server server("user", "pencil");
    auto c = sasl::make_client_mechanism("SCRAM-SHA-256", creds("user", right ? "pencil" : "pencil2"));
    REQUIRE(c);
    REQUIRE(server.read_line() == "SCRAM-SHA-256");
    REQUIRE(server.read_line() == "");  // the server speaks second: an empty first challenge
    server.write_line(base64::encode(*(*c)->initial_response()));
    auto server_first = server.read_line();
    REQUIRE(server_first);
    auto sf = base64::decode(*server_first);
    REQUIRE(sf);
    auto client_final = (*c)->respond(*sf);
    REQUIRE(client_final);
    server.write_line(base64::encode(*client_final));
    auto server_final = server.read_line();
    if (right) {
      REQUIRE(server_final);
      auto v = base64::decode(*server_final);
      REQUIRE(v);
      CHECK(v->starts_with("v="));
      auto end = (*c)->respond(*v);
      REQUIRE(end);
      CHECK(end->empty());
      CHECK((*c)->complete());
      server.write_line(base64::encode(*end));
      CHECK(server.finish() == 0);
    } else {
      // gsasl refuses the proof and says nothing more; the client never completes.
      CHECK((!server_final || server_final->empty()));
      CHECK(!(*c)->complete());
      CHECK(server.finish() != 0);
    }
  }
}

TEST_CASE("SCRAM-SHA-256 client: the RFC 7677 exchange byte for byte") {
  auto c = rfc_client();
  CHECK(c->name() == "SCRAM-SHA-256");
  CHECK(c->initial_response() == std::string(rfc_client_first));
  CHECK(!c->complete());
  auto final_msg = c->respond(rfc_server_first);
  REQUIRE(final_msg);
  CHECK(*final_msg == rfc_client_final);
  CHECK(!c->complete());
  auto end = c->respond(rfc_server_final);
  REQUIRE(end);
  CHECK(end->empty());
  CHECK(c->complete());
  CHECK(c->respond("anything").error() == sasl::errc::protocol_error);
}

TEST_CASE("SCRAM-SHA-256 client against the server mechanism") {
  auto c = sasl::make_client_mechanism("scram-sha-256", creds("alice", "wonder,land="));
  REQUIRE(c);
  CHECK(exchange(**c, "alice", "wonder,land="));

  auto wrong = sasl::make_client_mechanism("SCRAM-SHA-256", creds("alice", "guess"));
  REQUIRE(wrong);
  CHECK(!exchange(**wrong, "alice", "wonder,land="));
  CHECK(!(*wrong)->complete());

  // Names with ',' and '=' are escaped (RFC 5802 5.1) and the server reads them back.
  auto odd = sasl::make_client_mechanism("SCRAM-SHA-256", creds("a,b=c", "pw"));
  REQUIRE(odd);
  auto ir = (*odd)->initial_response();
  REQUIRE(ir);
  CHECK(ir->starts_with("n,,n=a=2Cb=3Dc,r="));
  auto again = sasl::make_client_mechanism("SCRAM-SHA-256", creds("a,b=c", "pw"));
  CHECK(exchange(**again, "a,b=c", "pw"));

  auto authz = sasl::make_client_mechanism("SCRAM-SHA-256", creds("alice", "pw", "bob"));
  CHECK((*authz)->initial_response()->starts_with("n,a=bob,n=alice,r="));
}

TEST_CASE("SCRAM-SHA-256 client: a server that cannot prove itself, or sends hostile messages") {
  SUBCASE("wrong server signature") {
    auto c = rfc_client();
    (void)c->initial_response();
    REQUIRE(c->respond(rfc_server_first));
    CHECK(c->respond("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").error() == sasl::errc::authentication_failed);
    CHECK(!c->complete());
  }
  SUBCASE("server error") {
    auto c = rfc_client();
    (void)c->initial_response();
    REQUIRE(c->respond(rfc_server_first));
    CHECK(c->respond("e=invalid-proof").error() == sasl::errc::authentication_failed);
  }
  SUBCASE("malformed server-first messages") {
    for (std::string_view bad : {
             "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",           // nonce not extended
             "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                     // nonce not ours
             "r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096",                                   // no salt
             "r=rOprNGfwEbeRWgbNEkqOx,s=!!!!,i=4096",                               // salt not base64
             "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",              // no iterations
             "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967295",     // hours of CPU
             "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
             "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",     // mandatory extension
             "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==",
             "",
         }) {
      CAPTURE(bad);
      auto c = rfc_client();
      (void)c->initial_response();
      CHECK(c->respond(bad).error() == sasl::errc::malformed);
      CHECK(!c->complete());
    }
  }
  SUBCASE("a server asking for the first message without an initial response") {
    auto c = rfc_client();
    auto first = c->respond("");
    REQUIRE(first);
    CHECK(*first == rfc_client_first);
  }
}

TEST_CASE("PLAIN and LOGIN clients") {
  auto p = sasl::make_client_mechanism("PLAIN", creds("alice", "wonderland", "admin"));
  REQUIRE(p);
  CHECK((*p)->initial_response() == "admin\0alice\0wonderland"s);
  CHECK((*p)->complete());
  auto p2 = sasl::make_client_mechanism("plain", creds("alice", "wonderland"));
  CHECK(exchange(**p2, "alice", "wonderland"));
  // A server that ignored the initial response asks with an empty challenge, once.
  auto p3 = sasl::make_client_mechanism("PLAIN", creds("alice", "wonderland"));
  CHECK((*p3)->respond("").value_or("") == "\0alice\0wonderland"s);
  CHECK((*p3)->respond("").error() == sasl::errc::protocol_error);

  auto l = sasl::make_client_mechanism("LOGIN", creds("alice", "wonderland"));
  REQUIRE(l);
  CHECK(!(*l)->initial_response());
  CHECK((*l)->respond("Username:").value_or("") == "alice");
  CHECK(!(*l)->complete());
  CHECK((*l)->respond("Password:").value_or("") == "wonderland");
  CHECK((*l)->complete());
  CHECK((*l)->respond("More?").error() == sasl::errc::protocol_error);
  auto l2 = sasl::make_client_mechanism("LOGIN", creds("alice", "wonderland"));
  CHECK(exchange(**l2, "alice", "wonderland"));
}

TEST_CASE("make_client_mechanism refuses what cannot be sent") {
  CHECK(sasl::make_client_mechanism("CRAM-MD5", creds("a", "b")).error() == sasl::errc::unsupported_mechanism);
  CHECK(sasl::make_client_mechanism("PLAIN", creds("", "b")).error() == sasl::errc::malformed);
  CHECK(sasl::make_client_mechanism("PLAIN", creds("a\0b"s, "c")).error() == sasl::errc::malformed);
  CHECK(sasl::make_client_mechanism("PLAIN", creds("a", std::string(256, 'x'))).error() == sasl::errc::malformed);
  CHECK(sasl::make_client_mechanism("LOGIN", creds("a", "b", "z")).error() == sasl::errc::malformed);
  CHECK(sasl::make_client_mechanism("SCRAM-SHA-256", creds("a", "p\0w"s)).error() == sasl::errc::malformed);
  CHECK(sasl::make_client_mechanism("SCRAM-SHA-256", creds("a", std::string(1000, 'x'))));
  CHECK(sasl::supported_client_mechanisms() == std::vector<std::string>{"SCRAM-SHA-256", "PLAIN", "LOGIN"});
}
