// clamd and spamd as chain filters, against scripted scanners: verdicts become refusals or
// headers, and a scanner that is down follows the entry's failure policy.
#include <doctest/doctest.h>

#include "filter/scan_fake.hpp"
#include "mailroom/filter/checks.hpp"

using namespace mailroom;
using namespace std::chrono_literals;
namespace flt = mailroom::filter;

namespace {

std::string const message = "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";

// One message through a chain of one entry, on the fake scanner's io_context.
flt::chain_session::message_outcome scan_through(asio::io_context& io, flt::chain_entry e) {
  smtp::session_info info;
  info.id = "scan-session";
  info.remote = {asio::ip::make_address("192.0.2.1"), 1234};
  std::vector<flt::chain_entry> chain{std::move(e)};
  flt::chain_session cs(chain, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  return testing::run(io, [&]() -> task<flt::chain_session::message_outcome> {
    CHECK_FALSE(co_await cs.connect(info));
    address const from{"a", "example.org"};
    smtp::mail_params const params{};
    CHECK_FALSE(co_await cs.mail(info, from, params));
    co_return co_await cs.message(message, "mx.example.test");
  }());
}

// A clamd reply: NUL-terminated (push_back: g++ 12 warns wrongly about string + char here).
std::string z(std::string_view v) {
  std::string s(v);
  s.push_back('\0');
  return s;
}

bool instream_done(std::string const& r) {
  return r.size() >= 14 && r.compare(r.size() - 4, 4, std::string(4, '\0')) == 0;
}

}  // namespace

TEST_CASE("clamd in the chain: a virus is refused with its name, a clean message is marked") {
  asio::io_context io;
  testing::fake_scanner f(io);
  f.complete = instream_done;
  f.reply = {z("stream: Eicar-Test-Signature FOUND")};
  f.start();
  flt::clamd_options o;
  o.address = f.address();
  o.deadlines = {2s, 2s, 5s};
  auto out = scan_through(io, {flt::make_clamd_filter(io.get_executor(), o)});
  CHECK(out.what == flt::verdict::kind::reject);
  REQUIRE(out.reply);
  CHECK(out.reply->code == 554);
  CHECK(out.reply->text == "Virus found: Eicar-Test-Signature");
  CHECK(f.received.find("body") != std::string::npos);  // the message itself was streamed

  testing::fake_scanner clean(io);
  clean.complete = instream_done;
  clean.reply = {z("stream: OK")};
  clean.start();
  o.address = clean.address();
  out = scan_through(io, {flt::make_clamd_filter(io.get_executor(), o)});
  CHECK(out.what == flt::verdict::kind::accept);
  CHECK(out.headers == "X-Virus-Scanned: clean by clamd\r\n");
}

TEST_CASE("spamd in the chain: spam over the reject score is refused, else headers say so") {
  auto spam_reply = std::string("SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\nSpam: True ; 12.5 / 5.0\r\n\r\nGTUBE,BAR");
  auto complete = [](std::string const& r) { return testing::request_complete(r, "Content-length: "); };
  asio::io_context io;
  testing::fake_scanner f(io);
  f.complete = complete;
  f.reply = {spam_reply};
  f.start();
  flt::spamd_options o;
  o.address = f.address();
  o.deadlines = {2s, 2s, 5s};
  auto out = scan_through(io, {flt::make_spamd_filter(io.get_executor(), o, 10.0)});
  CHECK(out.what == flt::verdict::kind::reject);
  REQUIRE(out.reply);
  CHECK(out.reply->code == 550);
  CHECK(f.received.rfind("SYMBOLS SPAMC/1.5\r\n", 0) == 0);

  testing::fake_scanner tag(io);
  tag.complete = complete;
  tag.reply = {spam_reply};
  tag.start();
  o.address = tag.address();
  out = scan_through(io, {flt::make_spamd_filter(io.get_executor(), o, 0)});  // never refuse
  CHECK(out.what == flt::verdict::kind::accept);
  CHECK(out.headers == "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=12.5 required=5.0\r\n\ttests=GTUBE,BAR\r\n");
}

TEST_CASE("a scanner that is down: 451 4.7.0 by default, passed through when its policy is accept") {
  asio::io_context io;
  flt::clamd_options o;
  {
    testing::fake_scanner gone(io);  // take a port, then free it
    o.address = gone.address();
  }
  o.deadlines = {2s, 2s, 5s};
  auto out = scan_through(io, {flt::make_clamd_filter(io.get_executor(), o), flt::failure_policy::tempfail});
  CHECK(out.what == flt::verdict::kind::tempfail);
  REQUIRE(out.reply);
  CHECK(out.reply->code == 451);
  CHECK(out.reply->enhanced == std::array<std::uint8_t, 3>{4, 7, 0});
  out = scan_through(io, {flt::make_clamd_filter(io.get_executor(), o), flt::failure_policy::accept});
  CHECK(out.what == flt::verdict::kind::accept);
  CHECK(out.headers.empty());
}
