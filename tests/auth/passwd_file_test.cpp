#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "support/helpers.hpp"

using namespace mailroom;

namespace {

// Output of a command (first line), or "" if it failed or is missing.
std::string command_output(std::string const& cmd) {
  std::string out;
  if (FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    if (::pclose(p) != 0) out.clear();
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

void write_file(std::string const& path, std::string const& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

struct fixture {
  testing::temp_dir dir;
  blocking_pool pool{2};
  asio::io_context io;
  std::string path = dir.path() + "/passwd";

  result<auth::identity> login(auth::backend& b, std::string user, std::string password, std::string authzid = {}) {
    return testing::run(io, b.authenticate({std::move(authzid), std::move(user), std::move(password)}));
  }
};

// A hash written by Dovecot's `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19).
constexpr char const* dovecot_scram =
    "{SCRAM-SHA-256}4096,mefSnsZlq8LJtmmIea1zCw==,fyW3XvDAmD4HZt6WsT4Vt1gBzvflf4gSoOifl6/JoB0=,"
    "XM0hPq3Y6d/hv447AzRWp8jtK/wLD6jHU5g1l2RO8JY=";
// `doveadm pw -s SHA512-CRYPT -p pencil` and `doveadm pw -s BLF-CRYPT -p pencil`.
constexpr char const* dovecot_sha512 =
    "{SHA512-CRYPT}$6$kNlPCYwZuDXXnXEu$3yGmLZ0cUNvwYIZxTcYZ/hqlSzkEee3VGyUqH2GfcaWxaLUFRsYWlp8QYPzKaoIHXPv3.ADjelKGXJC/uz3ZJ0";
constexpr char const* dovecot_blf = "{BLF-CRYPT}$2y$05$HyjHJVzugMoWz7wXIo3N1OoGFN286ImdLh1L6.4qT0UVabeng3tpC";

}  // namespace

TEST_CASE("hashes written by Dovecot verify, and the wrong password does not") {
  fixture f;
  write_file(f.path, std::string("# users\n\nscram:") + dovecot_scram + "\nsha:" + dovecot_sha512 +
                         "::::/home/sha\nblf:" + dovecot_blf + "\nplain:{PLAIN}pencil\n");
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(pf->size() == 4);
  CHECK(pf->warnings().empty());
  for (auto const* user : {"scram", "sha", "blf", "plain"}) {
    CAPTURE(user);
    auto ok = f.login(*pf, user, "pencil");
    REQUIRE(ok);
    CHECK(ok->user == user);
    auto bad = f.login(*pf, user, "pencil!");
    REQUIRE_FALSE(bad);
    CHECK(bad.error() == errc::bad_credentials);
  }
  CHECK(f.login(*pf, "nobody", "pencil").error() == errc::unknown_credentials);
  CHECK(f.login(*pf, "sha", "pencil", "someone-else").error() == errc::bad_credentials);
  CHECK(testing::run(f.io, pf->user_exists("blf")).value());
  CHECK_FALSE(testing::run(f.io, pf->user_exists("BLF")).value());
}

TEST_CASE("hashes from openssl passwd and mkpasswd verify") {
  fixture f;
  std::string lines;
  struct tool {
    char const* user;
    char const* cmd;
  };
  int made = 0;
  for (auto const& t : {tool{"o6", "openssl passwd -6 -stdin <<< 'pen cil'"}, tool{"o5", "openssl passwd -5 -stdin <<< 'pen cil'"},
                        tool{"yes", "mkpasswd -m yescrypt 'pen cil'"}, tool{"bc", "mkpasswd -m bcrypt 'pen cil'"}}) {
    auto hash = command_output(std::string("bash -c \"") + t.cmd + "\"");
    if (hash.empty()) {
      MESSAGE("skipped: " << t.cmd << " is not available (scripts/test.sh installs openssl and whois)");
      continue;
    }
    lines += std::string(t.user) + ":" + hash + "\n";  // no {SCHEME}: taken as {CRYPT}
    ++made;
  }
  REQUIRE(made > 0);
  write_file(f.path, lines);
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(pf->size() == static_cast<std::size_t>(made));
  for (auto const* user : {"o6", "o5", "yes", "bc"}) {
    if (!testing::run(f.io, pf->user_exists(user)).value()) continue;
    CAPTURE(user);
    CHECK(f.login(*pf, user, "pen cil"));
    CHECK_FALSE(f.login(*pf, user, "pencil"));
  }
}

TEST_CASE("hash_password produces what the file accepts, for every scheme") {
  fixture f;
  std::string lines;
  for (auto const* scheme : {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "SCRAM-SHA-256"}) {
    auto h = auth::hash_password("s3cret pass", scheme);
    REQUIRE(h);
    CHECK(h->rfind(std::string("{") + scheme + "}", 0) == 0);
    lines += std::string("u-") + scheme + ":" + *h + "\n";
  }
  CHECK(auth::hash_password("x", "MD4").error() == errc::unsupported);
  CHECK(*auth::hash_password("x") != *auth::hash_password("x"));  // salted
  write_file(f.path, lines);
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(pf->warnings().empty());
  CHECK(pf->supports_scram());
  for (auto const* scheme : {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "SCRAM-SHA-256"}) {
    CAPTURE(scheme);
    CHECK(f.login(*pf, std::string("u-") + scheme, "s3cret pass"));
    CHECK_FALSE(f.login(*pf, std::string("u-") + scheme, "s3cret"));
  }
  auto secret = testing::run(f.io, pf->scram_secret("u-SCRAM-SHA-256"));
  REQUIRE(secret);
  CHECK(secret->iterations == 4096);
  CHECK(testing::run(f.io, pf->scram_secret("u-SHA512-CRYPT")).error() == errc::unknown_credentials);
}

TEST_CASE("malformed lines are skipped and reported, never fatal") {
  fixture f;
  write_file(f.path, std::string("good:{PLAIN}x\n"
                                 ":{PLAIN}nouser\n"
                                 "nocolon\n"
                                 "weird:{MD4}abcd\n"
                                 "open:{PLAIN\n"
                                 "des:abXyZ123abc\n"
                                 "scram:{SCRAM-SHA-256}4096,!!,x,y\n"
                                 "good:{PLAIN}y\r\n") +
                         std::string("nul:{PLAIN}a\0b\n", 15));
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  auto w = pf->warnings();
  CHECK(w.size() == 7);
  CHECK(w[0].find(":2: ") != std::string::npos);
  CHECK(pf->size() == 2);  // good (the later line) and nul
  CHECK_FALSE(f.login(*pf, "good", "x"));
  CHECK(f.login(*pf, "good", "y"));  // CRLF line ends are tolerated
  CHECK_FALSE(pf->supports_scram());
  CHECK_FALSE(auth::passwd_file::open(f.dir.path() + "/missing", f.pool));
}

TEST_CASE("the file is re-read when it changes; a vanished file keeps the users") {
  fixture f;
  write_file(f.path, "a:{PLAIN}one\n");
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(f.login(*pf, "a", "one"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  write_file(f.path, "a:{PLAIN}two\nb:{PLAIN}three\n");
  CHECK(f.login(*pf, "a", "two"));
  CHECK(f.login(*pf, "b", "three"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::remove(f.path.c_str());
  CHECK(f.login(*pf, "b", "three"));
}

TEST_CASE("chain: the first backend that knows the user decides") {
  fixture f;
  write_file(f.path, std::string("file:") + dovecot_sha512 + "\nboth:{PLAIN}from-file\n");
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  auto mem = std::make_shared<auth::memory_backend>();
  mem->add_user("mem", "pencil");
  mem->add_user("both", "from-memory");
  auth::chain c({mem, pf});
  CHECK(f.login(c, "mem", "pencil"));
  CHECK(f.login(c, "file", "pencil"));
  CHECK(f.login(c, "both", "from-memory"));
  CHECK(f.login(c, "both", "from-file").error() == errc::bad_credentials);  // a wrong password is final
  CHECK(f.login(c, "nobody", "x").error() == errc::unknown_credentials);
  CHECK(testing::run(f.io, c.user_exists("file")).value());
  CHECK(c.supports_scram());
  CHECK(testing::run(f.io, c.scram_secret("mem")));
  CHECK(testing::run(f.io, c.scram_secret("file")).error() == errc::unknown_credentials);  // crypt hash
}
