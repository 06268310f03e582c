#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "mailroom/core/text.hpp"
#include "mailroom/mime/message.hpp"
#include "mailroom/mta/dsn.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

using fields = std::vector<std::pair<std::string, std::string>>;

std::string const original =
    "Received: from client.example ([192.0.2.1])\r\n\tby mx.example.org (mailroom) with ESMTP id X1;\r\n"
    "\tMon, 23 Nov 2026 13:55:02 +0000\r\n"
    "From: Sender <sender@example.org>\r\n"
    "To: bob@remote.example\r\n"
    "Subject: the report\r\n"
    "Message-ID: <orig-1@example.org>\r\n"
    "\r\n"
    "Hello Bob,\r\nthe numbers are in.\r\n";

auto const t_arrival = std::chrono::system_clock::from_time_t(1'800'000'000);

mta::dsn_report base_report() {
  mta::dsn_report r;
  r.reporting_mta = "mx.example.org";
  r.sender = {"sender", "example.org"};
  r.queue_id = "Q123";
  r.arrival = t_arrival;
  r.now = t_arrival + 1h;
  r.message_id = "<dsn-1@mx.example.org>";
  return r;
}

mta::dsn_recipient failed_rcpt(std::string local, smtp::reply reply) {
  mta::dsn_recipient x;
  x.addr = {std::move(local), "remote.example"};
  x.reply = std::move(reply);
  x.remote_mta = "mx.remote.example";
  x.last_attempt = t_arrival + 30min;
  return x;
}

// Every line ends in CRLF, none is longer than 998 octets, no NUL anywhere.
void check_lines(std::string const& m) {
  REQUIRE(m.size() >= 2);
  CHECK(m.substr(m.size() - 2) == "\r\n");
  std::size_t start = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    CHECK_MESSAGE(m[i] != '\0', "NUL at " << i);
    if (m[i] == '\r') {
      REQUIRE_MESSAGE((i + 1 < m.size() && m[i + 1] == '\n'), "bare CR at " << i);
    } else if (m[i] == '\n') {
      REQUIRE_MESSAGE((i > 0 && m[i - 1] == '\r'), "bare LF at " << i);
      CHECK_MESSAGE(i - 1 - start <= 998, "line of " << (i - 1 - start) << " octets at " << start);
      start = i + 1;
    }
  }
}

// The header blocks of a message/delivery-status body: per-message, then per recipient.
std::vector<fields> status_blocks(std::string const& m, mime::part const& p) {
  std::vector<fields> out;
  std::string_view region = std::string_view(m).substr(0, p.end);
  std::size_t off = p.body_begin;
  while (off < p.end) {
    std::vector<mime::field> f;
    auto next = mime::parse_header(region, off, f);
    REQUIRE(next);
    fields block;
    for (auto const& x : f) block.emplace_back(std::string(x.name), mime::unfold(x.value));
    out.push_back(std::move(block));
    if (*next <= off) break;
    off = *next;
  }
  return out;
}

std::string get(fields const& f, std::string_view name) {
  for (auto const& [k, v] : f)
    if (text::iequals(k, name)) return v;
  return "<missing>";
}
std::size_t count(fields const& f, std::string_view name) {
  std::size_t n = 0;
  for (auto const& [k, v] : f) n += text::iequals(k, name);
  return n;
}

std::string body_of(std::string const& m, mime::part const& p) { return m.substr(p.body_begin, p.end - p.body_begin); }

// Text as one line: line ends and the indentation after them become one space.
std::string flat(std::string const& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
      out += ' ';
      ++i;
      while (i + 1 < s.size() && s[i + 1] == ' ') ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string header(std::string const& m, mime::part const& p, std::string_view name) {
  auto h = p.header(name);
  return h ? mime::unfold(*h) : "<missing>";
}

}  // namespace

TEST_CASE("a failure DSN: multipart/report with notification, delivery-status and the whole original") {
  auto r = base_report();
  r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "<bob@remote.example>: no such user"}));
  r.recipients.push_back(failed_rcpt("carol", {554, {0, 0, 0}, "transaction failed"}));
  auto m = mta::make_dsn(r, original);
  check_lines(m);
  auto top = mime::parse(m).value();

  CHECK(header(m, top, "From") == "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.org>");
  CHECK(header(m, top, "To") == "<sender@example.org>");
  CHECK(header(m, top, "Subject") == "Undelivered Mail Returned to Sender");
  CHECK(header(m, top, "Auto-Submitted") == "auto-replied");
  CHECK(header(m, top, "MIME-Version") == "1.0");
  CHECK(header(m, top, "Message-ID") == "<dsn-1@mx.example.org>");
  CHECK(header(m, top, "Date") == "Fri, 15 Jan 2027 09:00:00 +0000");
  CHECK(top.type == "multipart");
  CHECK(top.subtype == "report");
  auto report_type = std::find_if(top.params.begin(), top.params.end(), [](auto const& p) { return p.first == "report-type"; });
  REQUIRE(report_type != top.params.end());
  CHECK(report_type->second == "delivery-status");
  REQUIRE(top.children.size() == 3);

  auto const& notice = top.children[0];
  CHECK(notice.type == "text");
  CHECK(notice.subtype == "plain");
  auto text = flat(body_of(m, notice));
  CHECK(text.find("could not be delivered") != std::string::npos);
  CHECK(text.find("<bob@remote.example>: host mx.remote.example said: 550 5.1.1 <bob@remote.example>: no such "
                  "user") != std::string::npos);
  CHECK(text.find("<carol@remote.example>") != std::string::npos);
  CHECK(text.find("Q123") != std::string::npos);

  auto const& ds = top.children[1];
  CHECK(ds.type == "message");
  CHECK(ds.subtype == "delivery-status");
  auto blocks = status_blocks(m, ds);
  REQUIRE(blocks.size() == 3);
  CHECK(get(blocks[0], "Reporting-MTA") == "dns; mx.example.org");
  CHECK(get(blocks[0], "Arrival-Date") == "Fri, 15 Jan 2027 08:00:00 +0000");
  CHECK(count(blocks[0], "Original-Envelope-Id") == 0);  // no ENVID given
  CHECK(get(blocks[1], "Final-Recipient") == "rfc822; bob@remote.example");
  CHECK(get(blocks[1], "Action") == "failed");
  CHECK(get(blocks[1], "Status") == "5.1.1");
  CHECK(get(blocks[1], "Remote-MTA") == "dns; mx.remote.example");
  CHECK(get(blocks[1], "Diagnostic-Code") == "smtp; 550 5.1.1 <bob@remote.example>: no such user");
  CHECK(get(blocks[1], "Last-Attempt-Date") == "Fri, 15 Jan 2027 08:30:00 +0000");
  CHECK(count(blocks[1], "Original-Recipient") == 0);
  CHECK(count(blocks[1], "Will-Retry-Until") == 0);
  CHECK(get(blocks[2], "Status") == "5.0.0");  // no enhanced code: derived from 554
  CHECK(get(blocks[2], "Diagnostic-Code") == "smtp; 554 transaction failed");

  auto const& orig = top.children[2];
  CHECK(orig.type == "message");
  CHECK(orig.subtype == "rfc822");
  CHECK(body_of(m, orig) == original);
  REQUIRE(orig.children.size() == 1);
  CHECK(header(m, orig.children[0], "Subject") == "the report");
}

TEST_CASE("RET=HDRS and the size cut-off return the original's header only") {
  std::string const head_only = original.substr(0, original.find("\r\n\r\n") + 2);
  SUBCASE("RET=HDRS") {
    auto r = base_report();
    r.ret = smtp::dsn_ret::headers;
    r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
    auto m = mta::make_dsn(r, original);
    check_lines(m);
    auto top = mime::parse(m).value();
    REQUIRE(top.children.size() == 3);
    CHECK(top.children[2].type == "text");
    CHECK(top.children[2].subtype == "rfc822-headers");
    CHECK(body_of(m, top.children[2]) == head_only);
    CHECK(m.find("the numbers are in") == std::string::npos);
    CHECK(body_of(m, top.children[0]).find("header of the original message") != std::string::npos);
  }
  SUBCASE("larger than max_returned") {
    auto r = base_report();
    r.ret = smtp::dsn_ret::full;
    r.max_returned = original.size() - 1;
    r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
    auto m = mta::make_dsn(r, original);
    auto top = mime::parse(m).value();
    CHECK(top.children.at(2).subtype == "rfc822-headers");
    CHECK(body_of(m, top.children[2]) == head_only);
    r.max_returned = original.size();  // exactly the limit: whole
    m = mta::make_dsn(r, original);
    top = mime::parse(m).value();
    CHECK(top.children.at(2).subtype == "rfc822");
  }
  SUBCASE("the default limit is 100 KiB") {
    auto r = base_report();
    r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
    std::string big = original + std::string(100 * 1024, 'x');
    auto top_text = mta::make_dsn(r, big);
    CHECK(top_text.size() < 20 * 1024);
    check_lines(top_text);  // the long x line would have been broken had it been returned
  }
}

TEST_CASE("a delay DSN: Action delayed, Will-Retry-Until, headers only, its own subject") {
  auto r = base_report();
  mta::dsn_recipient x;
  x.addr = {"bob", "remote.example"};
  x.action = mta::dsn_action::delayed;
  x.reply = smtp::reply{451, {4, 7, 1}, "greylisted, try again"};
  x.last_attempt = t_arrival + 4h;
  x.will_retry_until = t_arrival + 120h;
  r.recipients.push_back(x);
  auto m = mta::make_dsn(r, original);
  check_lines(m);
  auto top = mime::parse(m).value();
  CHECK(header(m, top, "Subject") == "Delayed Mail (still being retried)");
  auto blocks = status_blocks(m, top.children.at(1));
  REQUIRE(blocks.size() == 2);
  CHECK(get(blocks[1], "Action") == "delayed");
  CHECK(get(blocks[1], "Status") == "4.7.1");
  CHECK(get(blocks[1], "Will-Retry-Until") == "Wed, 20 Jan 2027 08:00:00 +0000");
  CHECK(top.children.at(2).subtype == "rfc822-headers");  // RET is about failure reports
  auto text = body_of(m, top.children[0]);
  text = flat(text);
  CHECK(text.find("not yet been delivered") != std::string::npos);
  CHECK(text.find("Wed, 20 Jan 2027") != std::string::npos);
}

TEST_CASE("expiry and loops carry their own status; the error text explains") {
  auto r = base_report();
  auto x = failed_rcpt("bob", {451, {4, 4, 1}, "connection timed out"});
  x.status = {4, 4, 7};
  x.error = "delivery time expired";
  r.recipients.push_back(x);
  mta::dsn_recipient loop;
  loop.addr = {"carol", "remote.example"};
  loop.status = {5, 4, 6};
  loop.error = "routing loop detected";
  r.recipients.push_back(loop);
  auto m = mta::make_dsn(r, original);
  auto top = mime::parse(m).value();
  auto blocks = status_blocks(m, top.children.at(1));
  REQUIRE(blocks.size() == 3);
  CHECK(get(blocks[1], "Action") == "failed");
  CHECK(get(blocks[1], "Status") == "4.4.7");
  CHECK(get(blocks[1], "Diagnostic-Code") == "smtp; 451 4.4.1 connection timed out");
  CHECK(get(blocks[2], "Status") == "5.4.6");
  CHECK(get(blocks[2], "Diagnostic-Code") == "X-mailroom; routing loop detected");
  CHECK(count(blocks[2], "Remote-MTA") == 0);
  CHECK(count(blocks[2], "Last-Attempt-Date") == 0);
  auto text = flat(body_of(m, top.children[0]));
  CHECK(text.find("delivery time expired; last reply: host mx.remote.example said: 451 4.4.1 connection timed out") !=
        std::string::npos);
  CHECK(mta::status_of(smtp::reply{550, {4, 1, 1}, "odd"}) == mta::dsn_status{5, 0, 0});  // class mismatch
  CHECK(mta::status_of(smtp::reply{421, {4, 3, 2}, "bye"}) == mta::dsn_status{4, 3, 2});
}

TEST_CASE("ENVID is echoed as xtext, ORCPT as Original-Recipient") {
  auto r = base_report();
  r.envid = "QQ314159+x=y";  // decoded, as smtp::parse_mail leaves it
  auto x = failed_rcpt("bob", {550, {5, 1, 1}, "no"});
  x.params.orcpt_type = "rfc822";
  x.params.orcpt = "Bob@Remote.Example";
  r.recipients.push_back(x);
  auto m = mta::make_dsn(r, original);
  auto top = mime::parse(m).value();
  auto blocks = status_blocks(m, top.children.at(1));
  REQUIRE(blocks.size() == 2);
  CHECK(get(blocks[0], "Original-Envelope-Id") == "QQ314159+2Bx+3Dy");
  CHECK(get(blocks[1], "Original-Recipient") == "rfc822; Bob@Remote.Example");
  CHECK(get(blocks[1], "Final-Recipient") == "rfc822; bob@remote.example");
  CHECK(body_of(m, top.children[0]).find("(originally Bob@Remote.Example)") != std::string::npos);
}

TEST_CASE("hostile reply text cannot break the report") {
  auto r = base_report();
  static char const raw[] = "line one\r\nAction: delivered\r\n\r\n--=_mailroom_report_X\r\nline\0two\x1b[31m \xff\xfe\xc3(";
  std::string evil(raw, sizeof raw - 1);
  evil += std::string(5000, 'A');  // one long word
  evil += "\n";
  evil.append(3000, ' ');
  std::string long_words;
  for (int i = 0; i < 400; ++i) long_words += "word" + std::to_string(i) + " ";
  auto x = failed_rcpt("bob", {550, {5, 7, 1}, evil + long_words});
  x.error = std::string("local\0error\r\nStatus: 2.0.0", 26);
  x.remote_mta = "mx.remote.example\r\nX-Evil: 1";
  x.params.orcpt_type = "rfc822\r\nX";
  x.params.orcpt = "o\r\nStatus: 2.0.0";
  r.recipients.push_back(x);
  r.envid = std::string("e\r\n\0v", 5);
  r.reporting_mta = "mx.example.org\r\nBcc: victim@example.net";
  auto m = mta::make_dsn(r, original);
  check_lines(m);
  auto top = mime::parse(m).value();
  CHECK(top.header("Bcc") == std::nullopt);
  REQUIRE(top.children.size() == 3);
  auto blocks = status_blocks(m, top.children[1]);
  REQUIRE(blocks.size() == 2);  // no forged block
  CHECK(count(blocks[1], "Action") == 1);
  CHECK(get(blocks[1], "Action") == "failed");
  CHECK(count(blocks[1], "Status") == 1);
  CHECK(get(blocks[1], "Status") == "5.7.1");
  CHECK(count(blocks[1], "X-Evil") == 0);
  CHECK(count(blocks[0], "Bcc") == 0);
  auto diag = get(blocks[1], "Diagnostic-Code");
  CHECK(diag.rfind("smtp; 550 5.7.1 line one Action: delivered --=_mailroom_report_X line?two?[31m ??" "?(AAAA", 0) == 0);
  for (unsigned char c : diag) CHECK((c >= 0x20 && c < 0x7f));  // ASCII, no controls
  CHECK(diag.size() < 4200);  // bounded
  CHECK(get(blocks[1], "Remote-MTA") == "dns; mx.remote.exampleX-Evil:1");
  CHECK(get(blocks[1], "Original-Recipient") == "rfc822X; o Status: 2.0.0");
  CHECK(get(blocks[0], "Original-Envelope-Id") == "e+0D+0A+00v");
  CHECK(get(blocks[0], "Reporting-MTA") == "dns; mx.example.orgBcc:victimexample.net");
  // The text part says it too, as valid UTF-8 (the stray octets became '?').
  CHECK(text::is_valid_utf8(body_of(m, top.children[0])));
}

TEST_CASE("the original comes back as valid 8bit MIME: CRLF, short lines, no NUL") {
  auto r = base_report();
  r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
  std::string odd = "Subject: " + std::string(1500, 's') + std::string("\nX-Bare: cr\rTo: x@y\n\nbody\0with NUL\n", 35) +
                    std::string(2500, 'b') + "\r\nlast line without end";
  auto m = mta::make_dsn(r, std::string_view(odd.data(), odd.size()));
  check_lines(m);
  auto top = mime::parse(m).value();
  auto const& orig = top.children.at(2);
  CHECK(orig.subtype == "rfc822");
  REQUIRE(orig.children.size() == 1);
  auto subject = orig.children[0].header("Subject");
  REQUIRE(subject);
  CHECK(mime::unfold(*subject).size() == 1501);  // folded, with one space where it was folded
  CHECK(orig.children[0].header("X-Bare"));
  CHECK(orig.children[0].header("To"));
  auto body = body_of(m, orig);
  CHECK(body.find("body with NUL\r\n") != std::string::npos);
  CHECK(body.find("last line without end\r\n") != std::string::npos);
}

TEST_CASE("non-ASCII addresses: a global report (RFC 6533) that needs SMTPUTF8") {
  auto r = base_report();
  r.sender = {"jörg", "bücher.example"};
  auto x = failed_rcpt("δοκιμή", {550, {5, 1, 1}, "unknown"});
  x.addr.domain = "παράδειγμα.example";
  r.recipients.push_back(x);
  r.recipients.push_back(failed_rcpt("ascii", {550, {5, 1, 1}, "unknown"}));
  std::string utf8_original = "From: jörg@bücher.example\r\nSubject: grüße\r\n\r\nhallo\r\n";
  CHECK(mta::is_global(r));
  auto m = mta::make_dsn(r, utf8_original);
  check_lines(m);
  CHECK(text::is_valid_utf8(m));
  auto top = mime::parse(m).value();
  CHECK(header(m, top, "To") == "<jörg@bücher.example>");
  REQUIRE(top.children.size() == 3);
  CHECK(top.children[0].header("Content-Type").value().find("utf-8") != std::string_view::npos);
  CHECK(top.children[1].subtype == "global-delivery-status");
  CHECK(top.children[2].subtype == "global");
  auto blocks = status_blocks(m, top.children[1]);
  REQUIRE(blocks.size() == 3);
  CHECK(get(blocks[1], "Final-Recipient") == "utf-8; δοκιμή@παράδειγμα.example");
  CHECK(get(blocks[2], "Final-Recipient") == "rfc822; ascii@remote.example");
  auto p = mta::dsn_mail_params(r, m);
  CHECK(p.smtputf8);
  CHECK(p.body == smtp::body_type::eight_bit_mime);
  CHECK(p.size == m.size());

  auto plain = base_report();
  plain.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
  CHECK_FALSE(mta::is_global(plain));
  auto pm = mta::make_dsn(plain, original);
  auto pp = mta::dsn_mail_params(plain, pm);
  CHECK_FALSE(pp.smtputf8);
  CHECK(pp.body == smtp::body_type::seven_bit);
  CHECK(pp.ret == smtp::dsn_ret::unspecified);
  CHECK(pp.envid.empty());
}

TEST_CASE("the MIME boundary never occurs in the parts; Message-IDs are unique when not given") {
  auto r = base_report();
  r.message_id.clear();
  r.recipients.push_back(failed_rcpt("bob", {550, {5, 1, 1}, "no"}));
  auto a = mta::make_dsn(r, original);
  auto b = mta::make_dsn(r, original);
  auto ida = mime::parse(a).value().header("Message-ID").value();
  auto idb = mime::parse(b).value().header("Message-ID").value();
  CHECK(ida != idb);
  CHECK(std::string(ida).find("@mx.example.org>") != std::string::npos);
  // An original quoting a boundary of ours still yields exactly three parts.
  auto top = mime::parse(a).value();
  std::string boundary;
  for (auto const& [k, v] : top.params)
    if (k == "boundary") boundary = v;
  REQUIRE_FALSE(boundary.empty());
  std::string tricky = original + "--" + boundary + "\r\nContent-Type: text/plain\r\n\r\nforged\r\n--" + boundary + "--\r\n";
  auto c = mta::make_dsn(r, tricky);
  auto tc = mime::parse(c).value();
  CHECK(tc.children.size() == 3);
  CHECK(body_of(c, tc.children.at(2)) == tricky);
}
