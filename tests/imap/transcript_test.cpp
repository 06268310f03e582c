// Golden transcripts: tests/imap/transcripts/*.txt, one session each against the in-memory store.
//
// Format: "C: text" is sent with CRLF; "S: text" must be the next line the server sends, where
// "{*}" matches any characters; a line "S: {*}" alone skips server lines until the next
// expected one matches. "#" lines are comments. The greeting is not part of a transcript. The
// INBOX holds two messages (see seed()).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/imap/server.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;

namespace {

bool matches(std::string_view pattern, std::string_view line) {
  auto star = pattern.find("{*}");
  if (star == std::string_view::npos) return pattern == line;
  if (line.substr(0, star) != pattern.substr(0, star)) return false;
  auto rest = pattern.substr(star + 3);
  for (std::size_t i = star; i <= line.size(); ++i)
    if (matches(rest, line.substr(i))) return true;
  return false;
}

std::vector<std::string> split_lines(std::string const& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    auto end = s.find("\r\n", pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

std::string run_transcript(std::string const& script) {
  asio::io_context io;
  blocking_pool pool{1};
  testing::temp_dir dir;
  auto st = std::make_shared<store::memory::store>(store::memory::options{false});
  st->add_account("alice");
  testing::run(io, [&]() -> task<void> {  // the seed
    auto a = (co_await st->open_account("alice")).value();
    for (auto [body, seen] : {std::pair<std::string_view, bool>{"Subject: hello\r\n\r\nfirst body\r\n", false},
                              {"From: bob@example.org\r\nSubject: world\r\n\r\nx\r\n", true}}) {
      store::append_options o;
      o.internal_date = 1700000000;
      if (seen) o.flags.set(store::system_flag::seen);
      auto ap = (co_await a->append("INBOX", o)).value();
      REQUIRE(ap->write(body));
      REQUIRE(co_await ap->commit());
    }
  }());
  testing::write_file(dir.path() + "/passwd", "alice:{PLAIN}secret\n");
  imap::server_options o;
  o.store = st;
  o.auth = auth::passwd_file::open(dir.path() + "/passwd", pool).value();
  o.auth_throttle = testing::fast_throttle();
  imap::server srv(io.get_executor(), o, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  imap::listener_options lo;
  lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
  lo.allow_plaintext_auth = true;
  auto ep = srv.listen(lo).value();
  return testing::converse(io, ep, script);
}

}  // namespace

TEST_CASE("IMAP golden transcripts") {
  auto dir = std::filesystem::path(MAILROOM_SOURCE_DIR) / "tests" / "imap" / "transcripts";
  std::vector<std::filesystem::path> files(std::filesystem::directory_iterator(dir), {});
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 6);
  for (auto const& file : files) {
    CAPTURE(file.filename().string());
    std::ifstream in(file);
    std::string script;
    std::vector<std::string> expected;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("C: ", 0) == 0 || line == "C:") script += (line.size() > 3 ? line.substr(3) : "") + "\r\n";
      else if (line.rfind("S: ", 0) == 0 || line == "S:") expected.push_back(line.size() > 3 ? line.substr(3) : "");
    }
    auto got = split_lines(run_transcript(script));
    REQUIRE(!got.empty());
    got.erase(got.begin());  // the greeting
    std::size_t g = 0;
    for (std::size_t e = 0; e < expected.size(); ++e) {
      CAPTURE(expected[e]);
      if (expected[e] == "{*}") {  // skip until the next expected line matches
        REQUIRE(e + 1 < expected.size());
        while (g < got.size() && !matches(expected[e + 1], got[g])) ++g;
        continue;
      }
      REQUIRE(g < got.size());
      CAPTURE(got[g]);
      CHECK(matches(expected[e], got[g]));
      ++g;
    }
    std::string extra = g < got.size() ? got[g] : std::string();
    CHECK(extra.empty());
  }
}
