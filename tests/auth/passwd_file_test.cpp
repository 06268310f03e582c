#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/core/text.hpp"
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
// `doveadm pw -s ARGON2ID -p pencil` and `doveadm pw -s ARGON2I -p pencil` (Dovecot 2.3.19, libsodium).
constexpr char const* dovecot_argon2id =
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$WMgHDe/jnf9hOT7/Vchl1w$kIb3LrZwrVYmc4izO8V0AV1gNjLuAuPp9IIODIlA2tY";
constexpr char const* dovecot_argon2i =
    "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$CiQrSO3g6RV8Vsi/2yHNjQ$9w3kLKn8xDfqLd+yaGpq9iENrxGiu+eIIo+0Jt6eDyU";

bool has_substring(std::vector<std::string> const& lines, std::string const& part) {
  for (auto const& l : lines)
    if (l.find(part) != std::string::npos) return true;
  return false;
}

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
    char const* scheme;
    char const* cmd;
  };
  // scripts/setup.sh installs openssl and whois (mkpasswd): a missing tool fails the test.
  std::vector<std::string> users;
  for (auto const& t : {tool{"o6", "SHA512-CRYPT", "openssl passwd -6 -stdin <<< 'pen cil'"},
                        tool{"o5", "SHA256-CRYPT", "openssl passwd -5 -stdin <<< 'pen cil'"},
                        tool{"yes", "YESCRYPT", "mkpasswd -m yescrypt 'pen cil'"},
                        tool{"bc", "BLF-CRYPT", "mkpasswd -m bcrypt 'pen cil'"}}) {
    auto hash = command_output(std::string("bash -c \"") + t.cmd + "\"");
    if (hash.empty()) {
      FAIL_CHECK(t.cmd << " gave no hash: is " << (t.cmd[0] == 'o' ? "openssl" : "whois (mkpasswd)")
                       << " installed? (scripts/setup.sh installs it)");
      continue;
    }
    lines += std::string(t.user) + ":" + hash + "\n";  // no {SCHEME}: taken as {CRYPT}
    lines += std::string(t.user) + "-s:{" + t.scheme + "}" + hash + "\n";  // as Dovecot and mailroomctl write it
    users.push_back(t.user);
    users.push_back(std::string(t.user) + "-s");
  }
  REQUIRE_FALSE(users.empty());
  write_file(f.path, lines);
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(pf->warnings().empty());
  CHECK(pf->size() == users.size());
  for (auto const& user : users) {
    CAPTURE(user);
    CHECK(f.login(*pf, user, "pen cil"));
    CHECK_FALSE(f.login(*pf, user, "pencil"));
  }
}

TEST_CASE("Argon2 hashes from Dovecot and the argon2 tool verify") {
  if (!auth::scheme_supported("ARGON2ID")) {
    MESSAGE("mailroom was built without libargon2: the next test checks that such users are refused");
    return;
  }
  CHECK(auth::scheme_supported("argon2i"));
  fixture f;
  std::string lines = std::string("dc-id:") + dovecot_argon2id + "\ndc-i:" + dovecot_argon2i + "\n";
  // Debian's argon2 (the reference implementation's CLI; scripts/setup.sh installs it): -m is log2(KiB).
  for (std::string type : {"id", "i"}) {
    auto hash = command_output("printf %s 'pen cil' | argon2 mailroom-salt-16 -" + type + " -t 3 -m 16 -p 1 -e");
    if (hash.empty())
      FAIL("the argon2 command gave no hash: is Debian's argon2 installed? (scripts/setup.sh installs it)");
    REQUIRE(hash.rfind("$argon2" + type + "$v=19$m=65536,t=3,p=1$", 0) == 0);
    lines += "tool-" + type + ":{ARGON2" + text::to_upper(type) + "}" + hash + "\n";
  }
  write_file(f.path, lines);
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(pf->warnings().empty());
  REQUIRE(pf->size() == 4);
  for (auto const* user : {"dc-id", "dc-i"}) {
    CAPTURE(user);
    CHECK(f.login(*pf, user, "pencil"));
    CHECK(f.login(*pf, user, "pencil!").error() == errc::bad_credentials);
  }
  for (auto const* user : {"tool-id", "tool-i"}) {
    CAPTURE(user);
    CHECK(f.login(*pf, user, "pen cil"));
    CHECK(f.login(*pf, user, "pencil").error() == errc::bad_credentials);
  }
}

TEST_CASE("Argon2 lines that are damaged, or that this build cannot verify, are skipped with a warning") {
  fixture f;
  std::string const good_id = dovecot_argon2id, good_i = dovecot_argon2i;
  std::string const id_body = good_id.substr(good_id.find('$'));  // "$argon2id$v=19$..."
  std::string const i_body = good_i.substr(good_i.find('$'));
  write_file(f.path, "ok-id:" + good_id + "\nok-i:" + good_i + "\n" +
                         "swapped:{ARGON2ID}" + i_body + "\n" +  // an argon2i hash under {ARGON2ID}
                         "no-salt:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$$abc\n" +
                         "no-cost:{ARGON2I}$argon2i$v=19$WMgHDe/jnf9hOT7/Vchl1w$kIb3LrZw\n" +
                         "bad-char:{ARGON2ID}" + id_body + "!\n" +
                         "crypt-hash:{ARGON2ID}$6$abc$def\n");
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  auto w = pf->warnings();
  if (auth::scheme_supported("ARGON2ID")) {
    CHECK(w.size() == 5);
    CHECK(has_substring(w, ":3: not an encoded $argon2id$ hash"));
    CHECK(has_substring(w, ":5: not an encoded $argon2i$ hash"));
    CHECK(pf->size() == 2);
    CHECK(f.login(*pf, "ok-id", "pencil"));
    CHECK(f.login(*pf, "swapped", "pencil").error() == errc::unknown_credentials);
  } else {
    // Every Argon2 line is reported, by user; none is loaded, none crashes, and hashing refuses.
    CHECK(w.size() == 7);
    CHECK(has_substring(w, ":1: {ARGON2ID} is not supported: mailroom was built without libargon2; ok-id cannot "
                           "log in"));
    CHECK(has_substring(w, ":2: {ARGON2I} is not supported"));
    CHECK(pf->size() == 0);
    CHECK(f.login(*pf, "ok-id", "pencil").error() == errc::unknown_credentials);
    CHECK_FALSE(auth::scheme_supported("ARGON2I"));
    CHECK(auth::hash_password("x", "ARGON2ID").error() == errc::unsupported);
  }
  CHECK(auth::scheme_supported("sha512-crypt"));
  CHECK(auth::scheme_supported("SCRAM-SHA-256"));
  CHECK_FALSE(auth::scheme_supported("MD5-CRYPT"));
}

TEST_CASE("hash_password produces what the file accepts, for every scheme") {
  fixture f;
  std::string lines;
  std::vector<std::string> schemes = {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "SCRAM-SHA-256"};
  if (auth::scheme_supported("ARGON2ID")) schemes.push_back("ARGON2ID");
  for (auto const& scheme : schemes) {
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
  for (auto const& scheme : schemes) {
    CAPTURE(scheme);
    CHECK(f.login(*pf, std::string("u-") + scheme, "s3cret pass"));
    CHECK_FALSE(f.login(*pf, std::string("u-") + scheme, "s3cret"));
  }
  auto secret = testing::run(f.io, pf->scram_secret("u-SCRAM-SHA-256"));
  REQUIRE(secret);
  CHECK(secret->iterations == 4096);
  CHECK(testing::run(f.io, pf->scram_secret("u-SHA512-CRYPT")).error() == errc::unknown_credentials);
}

TEST_CASE("ARGON2ID from hash_password: Dovecot's costs, a fresh 16-byte salt, a 32-byte hash") {
  if (!auth::scheme_supported("ARGON2ID")) {
    CHECK(auth::hash_password("x", "ARGON2ID").error() == errc::unsupported);
    return;
  }
  auto a = auth::hash_password("pencil", "argon2id").value();
  auto b = auth::hash_password("pencil", "ARGON2ID").value();
  std::string const prefix = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$";
  REQUIRE(a.rfind(prefix, 0) == 0);
  auto salt_and_hash = a.substr(prefix.size());
  auto dollar = salt_and_hash.find('$');
  CHECK(dollar == 22);                                    // 16 bytes, unpadded base64
  CHECK(salt_and_hash.size() - dollar - 1 == 43);         // 32 bytes
  CHECK(a.substr(0, prefix.size() + 22) != b.substr(0, prefix.size() + 22));  // salted afresh
  // Dovecot accepts it too (scripts/setup.sh installs dovecot-core): `doveadm pw -t` verifies a hash.
  CHECK(command_output("doveadm pw -t '" + a + "' -p pencil").find("(verified)") != std::string::npos);
  CHECK(command_output("doveadm pw -t '" + a + "' -p Pencil").empty());
  fixture f;
  write_file(f.path, "a:" + a + "\n");
  auto pf = auth::passwd_file::open(f.path, f.pool).value();
  CHECK(f.login(*pf, "a", "pencil"));
  CHECK(f.login(*pf, "a", "Pencil").error() == errc::bad_credentials);
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
