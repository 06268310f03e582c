#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "mailroom/imap/sort.hpp"

using namespace mailroom;
using imap::sort_criterion;
using imap::sort_key;
using imap::thread_algorithm;

namespace {

using fields = std::initializer_list<std::pair<char const*, std::string>>;

std::string header(fields f) {
  std::string h;
  for (auto const& [name, value] : f) h += std::string(name) + ": " + value + "\r\n";
  return h + "\r\n";
}

// Messages with stable header storage; uid = seq + 1000 so tests can tell them apart.
struct mailbox {
  std::deque<std::string> headers;
  std::vector<imap::sort_message> msgs;

  void add(std::uint32_t seq, std::string hdr, std::int64_t internal_date = 0, std::uint64_t size = 0) {
    headers.push_back(std::move(hdr));
    msgs.push_back({seq, seq + 1000, internal_date, size, headers.back()});
  }
  // A message whose sent date is `date` (via INTERNALDATE: no Date field).
  void add(std::uint32_t seq, fields f, std::int64_t date = 0) { add(seq, header(f), date, 0); }

  std::vector<std::uint32_t> sorted(std::initializer_list<sort_criterion> by) const {
    std::vector<sort_criterion> v(by);
    std::vector<std::uint32_t> out;
    for (auto i : imap::sort_messages(msgs, v)) out.push_back(msgs[i].seq);
    return out;
  }
  std::string refs(bool uid = false) const { return imap::thread_messages(msgs, thread_algorithm::references, uid); }
  std::string ordered() const { return imap::thread_messages(msgs, thread_algorithm::orderedsubject, false); }
};

using seqs = std::vector<std::uint32_t>;

// Checks RFC 5256 thread-list syntax, collecting the numbers; false on a syntax error.
//   thread-list = "(" (thread-members / thread-nested) ")"
//   thread-members = nz-number *(SP nz-number) [SP thread-nested]
//   thread-nested = 2*thread-list
struct thread_syntax {
  std::string_view s;
  std::size_t i = 0;
  std::vector<std::uint64_t> numbers;

  bool number() {
    if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
    std::uint64_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + static_cast<std::uint64_t>(s[i++] - '0');
    numbers.push_back(v);
    return true;
  }
  bool nested(int depth) {  // at '('
    int lists = 0;
    while (i < s.size() && s[i] == '(') {
      if (!list(depth + 1)) return false;
      ++lists;
    }
    return lists >= 2;
  }
  bool list(int depth) {
    if (depth > 200 || i >= s.size() || s[i] != '(') return false;
    ++i;
    if (i < s.size() && s[i] == '(') {
      if (!nested(depth)) return false;
    } else {
      if (!number()) return false;
      while (i < s.size() && s[i] == ' ') {
        ++i;
        if (i < s.size() && s[i] == '(') {
          if (!nested(depth)) return false;
          break;
        }
        if (!number()) return false;
      }
    }
    if (i >= s.size() || s[i] != ')') return false;
    ++i;
    return true;
  }
  bool all() {
    while (i < s.size())
      if (!list(0)) return false;
    return true;
  }
};

// The response is well-formed and names every message of the mailbox exactly once.
void check_thread_response(mailbox const& mb, std::string const& response) {
  thread_syntax p;
  p.s = response;
  REQUIRE(p.all());
  std::vector<std::uint64_t> want;
  for (auto const& m : mb.msgs) want.push_back(m.seq);
  std::sort(want.begin(), want.end());
  std::sort(p.numbers.begin(), p.numbers.end());
  CHECK(p.numbers == want);
}

std::string seq_chain(std::uint32_t from, std::uint32_t to, int step) {
  std::string s = "(";
  for (auto k = from;; k = static_cast<std::uint32_t>(static_cast<int>(k) + step)) {
    s += std::to_string(k);
    if (k == to) break;
    s += ' ';
  }
  return s + ")";
}

std::string id(std::uint32_t k) { return "<m" + std::to_string(k) + "@example.org>"; }

}  // namespace

TEST_CASE("sort and thread names") {
  CHECK(imap::parse_sort_key("ARRIVAL") == sort_key::arrival);
  CHECK(imap::parse_sort_key("cc") == sort_key::cc);
  CHECK(imap::parse_sort_key("Date") == sort_key::date);
  CHECK(imap::parse_sort_key("FROM") == sort_key::from);
  CHECK(imap::parse_sort_key("size") == sort_key::size);
  CHECK(imap::parse_sort_key("SUBJECT") == sort_key::subject);
  CHECK(imap::parse_sort_key("TO") == sort_key::to);
  CHECK(imap::parse_sort_key("displayfrom") == sort_key::display_from);
  CHECK(imap::parse_sort_key("DISPLAYTO") == sort_key::display_to);
  CHECK_FALSE(imap::parse_sort_key("REVERSE"));
  CHECK_FALSE(imap::parse_sort_key(""));
  CHECK_FALSE(imap::parse_sort_key("DISPLAY"));
  CHECK_FALSE(imap::parse_sort_key("SUBJECTS"));

  std::vector<std::string_view> program = {"REVERSE", "date", "SUBJECT"};
  auto c = imap::parse_sort_criteria(program);
  REQUIRE(c);
  REQUIRE(c->size() == 2);
  CHECK((*c)[0].key == sort_key::date);
  CHECK((*c)[0].reverse);
  CHECK((*c)[1].key == sort_key::subject);
  CHECK_FALSE((*c)[1].reverse);
  std::vector<std::string_view> dangling = {"DATE", "REVERSE"}, unknown = {"DATE", "COLOR"}, empty;
  CHECK_FALSE(imap::parse_sort_criteria(dangling));
  CHECK_FALSE(imap::parse_sort_criteria(unknown));
  CHECK_FALSE(imap::parse_sort_criteria(empty));

  CHECK(imap::parse_thread_algorithm("REFERENCES") == thread_algorithm::references);
  CHECK(imap::parse_thread_algorithm("orderedsubject") == thread_algorithm::orderedsubject);
  CHECK_FALSE(imap::parse_thread_algorithm("REFS"));
  CHECK_FALSE(imap::parse_thread_algorithm(""));
}

TEST_CASE("RFC 5322 dates, with the obsolete forms") {
  using imap::parse_message_date;
  CHECK(parse_message_date("Thu, 01 Jan 1970 00:00:00 +0000") == 0);
  CHECK(parse_message_date("Tue, 1 Jul 2003 10:52:37 +0200") == 1057049557);
  CHECK(parse_message_date("1 Jul 2003 10:52:37 +0200") == 1057049557);  // no day of week
  CHECK(parse_message_date("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)") == 837595405);
  CHECK(parse_message_date("Wed, 17 Jul 1996 02:23:25 PDT") == 837595405);
  CHECK(parse_message_date(" Wed,\r\n 17 Jul 1996\r\n 02:23:25 -0700") == 837595405);  // folded
  CHECK(parse_message_date("17 Jul 1996 09:23:25 GMT") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 09:23:25 UT") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 09:23:25 Z") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 09:23:25 A") == 837595405);     // military: -0000
  CHECK(parse_message_date("17 Jul 1996 09:23:25 CEST") == 837595405);  // unknown: -0000
  CHECK(parse_message_date("17 Jul 1996 09:23:25") == 837595405);       // lenient: no zone
  CHECK(parse_message_date("17 Jul 1996 05:23:25 EDT") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 04:23:25 EST") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 04:23:25 CDT") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 03:23:25 CST") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 03:23:25 MDT") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 02:23:25 MST") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 01:23:25 PST") == 837595405);
  CHECK(parse_message_date("17 Jul 1996 11:23:25 +02:00") == 837595405);  // lenient: colon in zone
  CHECK(parse_message_date("17 Jul 1996 09:23 +0000") == 837595405 - 25);  // no seconds
  // Comments and white space between any tokens (obs-FWS, CFWS).
  CHECK(parse_message_date("(x) Wed (y) , 17 (z) Jul (a\\)b) 1996 09 : 23 : 25 (c) +0000 (d)") == 837595405);
  CHECK(parse_message_date("17-Jul-1996 09:23:25 +0000") == 837595405);
  CHECK(parse_message_date("Wednesday, 17 July 1996 09:23:25 +0000") == 837595405);
  CHECK(parse_message_date("wed, 17 jul 1996 09:23:25 +0000") == 837595405);
  CHECK(parse_message_date("Fri, 17 Jul 1996 09:23:25 +0000") == 837595405);  // wrong weekday is ignored
  // Two- and three-digit years (RFC 5322 4.3).
  CHECK(parse_message_date("1 Jan 99 00:00:00 +0000") == 915148800);
  CHECK(parse_message_date("1 Jan 49 00:00:00 +0000") == 2493072000);
  CHECK(parse_message_date("1 Jan 101 00:00:00 +0000") == 978307200);
  CHECK(parse_message_date("29 Feb 2000 00:00:00 +0000") == 951782400);
  CHECK(parse_message_date("31 Dec 9999 23:59:59 +0000") == 253402300799);
  CHECK(parse_message_date("1 Jan 1900 00:00:00 +0000") == -2208988800);
  CHECK(parse_message_date("31 Dec 1998 23:59:60 +0000") == 915148800);  // leap second
  CHECK(parse_message_date("1 Jan 2001 00:00:00 +9959") == 978307200 - (99 * 3600 + 59 * 60));
  // Impossible or unreadable.
  for (auto bad : {"", "garbage", "32 Jan 2001 00:00:00 +0000", "29 Feb 2001 00:00:00 +0000",
                   "31 Apr 2001 00:00:00 +0000", "0 Jan 2001 00:00:00 +0000", "1 Foo 2001 00:00:00 +0000",
                   "1 Jan 2001 24:00:00 +0000", "1 Jan 2001 23:60:00 +0000", "1 Jan 2001 23:59:61 +0000",
                   "1 Jan 1899 00:00:00 +0000", "1 Jan 10000 00:00:00 +0000", "1 Jan 1 00:00:00 +0000",
                   "1 Jan 2001 00:00:00 +0060", "1 Jan 2001 00:00:00 +00", "1 Jan 2001 00:00:00 *",
                   "1 Jan 2001", "1 Jan 2001 12", "1 Jan 2001 12:", "123 Jan 2001 00:00:00 +0000",
                   "Jan 1 2001 00:00:00 +0000", "1 Jan 2001 00:00:00 +99999", "1 Jan 2001 00:00:00 +"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_message_date(bad));
  }
  // Hostile: huge, unterminated comment, nothing but tokens.
  CHECK_FALSE(parse_message_date(std::string(1000000, '(')));
  CHECK_FALSE(parse_message_date(std::string(1000000, '9')));
  CHECK(parse_message_date("1 Jan 2001 00:00:00 +0000 " + std::string(100000, 'x')) == 978307200);
}

TEST_CASE("base subject (RFC 5256 section 2.1)") {
  using imap::base_subject;
  using imap::is_reply_or_forward;
  CHECK(base_subject("Hello") == "Hello");
  CHECK(base_subject("Re: Hello") == "Hello");
  CHECK(base_subject("RE: re: Re:Hello") == "Hello");
  CHECK(base_subject("Fwd: Hello") == "Hello");
  CHECK(base_subject("FW: Hello") == "Hello");
  CHECK(base_subject("fw:Hello") == "Hello");
  CHECK(base_subject("Re : Hello") == "Hello");          // *WSP before the colon
  CHECK(base_subject("Re[2]: Hello") == "Hello");        // blob before the colon
  CHECK(base_subject("Re [2] : Hello") == "Hello");
  CHECK(base_subject("[list] Re: Hello") == "Hello");    // blobs before a subj-refwd
  CHECK(base_subject("[a][b] [c] re: [d] Fwd: Hello") == "Hello");
  CHECK(base_subject("[list] Hello") == "Hello");        // step 4
  CHECK(base_subject("[list]") == "[list]");             // ... unless nothing would remain
  CHECK(base_subject("[a][b]") == "[b]");
  CHECK(base_subject("Re: [list]") == "[list]");
  CHECK(base_subject("Hello (fwd)") == "Hello");
  CHECK(base_subject("Hello (FWD) (fwd)   ") == "Hello");
  CHECK(base_subject("Hello(fwd)") == "Hello");
  CHECK(base_subject("[Fwd: Hello]") == "Hello");
  CHECK(base_subject("[fwd: Re: Hello (fwd)]") == "Hello");
  CHECK(base_subject("Fwd: [Fwd: [fwd: Re: Hello]]") == "Hello");
  CHECK(base_subject("[fwd: ]") == "");
  CHECK(base_subject("[fwd: Hello") == "[fwd: Hello");
  CHECK(base_subject("  Hello \t  world  ") == "Hello world");  // white space normalised
  CHECK(base_subject("Hello\r\n world") == "Hello world");     // folding
  CHECK(base_subject("Rea: Hello") == "Rea: Hello");
  CHECK(base_subject("Reply: Hello") == "Reply: Hello");
  CHECK(base_subject("Re(2): Hello") == "Re(2): Hello");        // only [blob] is a counter
  CHECK(base_subject("Aw: Hello") == "Aw: Hello");              // not in RFC 5256
  CHECK(base_subject("Re: Re:") == "");
  CHECK(base_subject("(fwd)") == "");
  CHECK(base_subject("") == "");
  CHECK(base_subject("   ") == "");
  CHECK(base_subject("Re: [list] Re: [x]:") == ":");  // "[x]" is a blob, not a subj-refwd: step 4 removes it
  // RFC 2047 first: an encoded "Re:" is a reply marker too.
  CHECK(base_subject("=?utf-8?q?Re:_caf=C3=A9?=") == "caf\xc3\xa9");
  CHECK(base_subject("Re: =?utf-8?b?w6nDqQ==?= =?utf-8?q?_x?=") == "\xc3\xa9\xc3\xa9 x");

  CHECK(is_reply_or_forward("Re: x"));
  CHECK(is_reply_or_forward("[list] Fwd: x"));
  CHECK(is_reply_or_forward("x (fwd)"));
  CHECK(is_reply_or_forward("[fwd: x]"));
  CHECK_FALSE(is_reply_or_forward("x"));
  CHECK_FALSE(is_reply_or_forward("[list] x"));
  CHECK_FALSE(is_reply_or_forward("  x  "));
  CHECK_FALSE(is_reply_or_forward(""));
}

TEST_CASE("base subject: hostile subjects stay linear") {
  using imap::base_subject;
  std::string blobs;
  for (int i = 0; i < 100000; ++i) blobs += "[a]";
  CHECK(base_subject(blobs + " x") == "x");
  CHECK(base_subject(blobs) == "[a]");
  CHECK(base_subject(blobs + " re [zzz x") == "re [zzz x");
  std::string res;
  for (int i = 0; i < 100000; ++i) res += "Re: ";
  CHECK(base_subject(res + "x") == "x");
  std::string fwds, close;
  for (int i = 0; i < 50000; ++i) {
    fwds += "[fwd: ";
    close += "]";
  }
  CHECK(base_subject(fwds + "x" + close) == "x");
  CHECK(base_subject(std::string(300000, '[')) == std::string(300000, '['));
  CHECK(base_subject("[" + std::string(300000, 'a')) == "[" + std::string(300000, 'a'));
  std::string trailers;
  for (int i = 0; i < 100000; ++i) trailers += " (fwd)";
  CHECK(base_subject("x" + trailers) == "x");
  std::string mixed;
  for (int i = 0; i < 30000; ++i) mixed += "[a] re [b";
  CHECK(base_subject(mixed).size() > 0);
}

TEST_CASE("SORT: single keys, REVERSE, ties by sequence number") {
  mailbox mb;
  mb.add(1, header({{"Subject", "Re: banana"}, {"From", "Zed <zed@example.org>"}, {"To", "b@x"},
                    {"Date", "Mon, 2 Jan 2006 10:00:00 +0000"}}),
         500, 300);
  mb.add(2, header({{"Subject", "apple"}, {"From", "\"Ann\" <ANN@example.org>"}, {"Cc", "c@x"},
                    {"Date", "Mon, 2 Jan 2006 12:00:00 +0300"}}),  // 09:00 UTC: earlier than #1
         100, 100);
  mb.add(3, header({{"Subject", "[list] Cherry"}, {"From", "bob@example.org"}, {"To", "a@x, z@x"}, {"Cc", "a@x"},
                    {"Date", "not a date"}}),
         50, 200);  // the sent date falls back to INTERNALDATE (50)
  mb.add(4, header({{"Subject", "Fwd: Apple"}}), 100, 100);  // no From/To/Cc/Date
  CHECK(mb.sorted({{sort_key::arrival}}) == seqs{3, 2, 4, 1});
  CHECK(mb.sorted({{sort_key::arrival, true}}) == seqs{1, 2, 4, 3});  // 2 and 4 tie: still by seq
  CHECK(mb.sorted({{sort_key::size}}) == seqs{2, 4, 3, 1});
  CHECK(mb.sorted({{sort_key::size, true}}) == seqs{1, 3, 2, 4});
  CHECK(mb.sorted({{sort_key::date}}) == seqs{3, 4, 2, 1});
  CHECK(mb.sorted({{sort_key::date, true}}) == seqs{1, 2, 4, 3});
  CHECK(mb.sorted({{sort_key::subject}}) == seqs{2, 4, 1, 3});  // apple, Apple, banana, Cherry
  CHECK(mb.sorted({{sort_key::subject, true}}) == seqs{3, 1, 2, 4});
  CHECK(mb.sorted({{sort_key::from}}) == seqs{4, 2, 3, 1});  // "", ANN, bob, zed
  CHECK(mb.sorted({{sort_key::to}}) == seqs{2, 4, 3, 1});    // "", "", a, b
  CHECK(mb.sorted({{sort_key::cc}}) == seqs{1, 4, 3, 2});    // "", "", a, c
  CHECK(mb.sorted({}) == seqs{1, 2, 3, 4});
}

TEST_CASE("SORT: multiple keys, the RFC 5256 SUBJECT REVERSE DATE shape") {
  mailbox mb;
  mb.add(1, {{"Subject", "Re: status"}}, 40);
  mb.add(2, {{"Subject", "status"}}, 10);
  mb.add(3, {{"Subject", "agenda"}}, 30);
  mb.add(4, {{"Subject", "Fwd: STATUS"}}, 50);
  mb.add(5, {{"Subject", "[team] Agenda"}}, 20);
  mb.add(6, {{"Subject", "status"}}, 40);  // same subject and date as #1
  CHECK(mb.sorted({{sort_key::subject}, {sort_key::date, true}}) == seqs{3, 5, 4, 1, 6, 2});
  CHECK(mb.sorted({{sort_key::subject, true}, {sort_key::date}}) == seqs{2, 1, 6, 4, 5, 3});
  CHECK(mb.sorted({{sort_key::subject}, {sort_key::arrival}}) == seqs{5, 3, 2, 1, 6, 4});
}

TEST_CASE("SORT: i;ascii-casemap folds to upper case; non-ASCII by octet") {
  mailbox mb;
  mb.add(1, {{"Subject", "a_"}});
  mb.add(2, {{"Subject", "aa"}});
  mb.add(3, {{"Subject", "AB"}});
  mb.add(4, {{"Subject", "=?utf-8?q?=C3=A9?="}});  // U+00E9 sorts after ASCII
  mb.add(5, {{"Subject", "Z"}});
  // Folded: "A_", "AA", "AB": 'A' (0x41) < 'B' < '_' (0x5F); a lower-case fold would put "a_" first.
  CHECK(mb.sorted({{sort_key::subject}}) == seqs{2, 3, 1, 5, 4});
}

TEST_CASE("SORT: address keys use the first address's mailbox") {
  mailbox mb;
  mb.add(1, {{"From", "\"Zed\" <alice@z.example>"}});
  mb.add(2, {{"From", "Alice <bob@a.example>, aaron@a.example"}});
  mb.add(3, {{"From", "team: carol@x, dave@x;"}});  // a group: its name (as ENVELOPE's first address)
  mb.add(4, {{"From", "undisclosed-recipients:;"}});
  mb.add(5, {{"From", "  (only a comment)  "}});
  mb.add(6, {{"From", "ALICE@other.example"}});
  CHECK(mb.sorted({{sort_key::from}}) == seqs{5, 1, 6, 2, 3, 4});
}

TEST_CASE("SORT: DISPLAYFROM and DISPLAYTO (RFC 5957)") {
  mailbox mb;
  mb.add(1, {{"From", "=?utf-8?q?=C3=89mile?= <zz@example.org>"}, {"To", "Zoe <a@x>"}});
  mb.add(2, {{"From", "bob@example.org"}, {"To", "adam@x"}});  // no display name: the addr-spec
  mb.add(3, {{"From", "\"Carl\" <aaa@example.org>"}, {"To", "\"\" <mike@x>"}});
  mb.add(4, {{"From", "=?iso-8859-1?q?Andr=E9?= <x@y>"}});
  mb.add(5, {{"To", "=?utf-8?q?b?= <zzz@x>"}});
  CHECK(mb.sorted({{sort_key::display_from}}) == seqs{5, 4, 2, 3, 1});  // "", André, bob@..., Carl, Émile
  CHECK(mb.sorted({{sort_key::from}}) == seqs{5, 3, 2, 4, 1});          // "", aaa, bob, x, zz
  CHECK(mb.sorted({{sort_key::display_to}}) == seqs{4, 2, 5, 3, 1});    // "", adam@x, b, mike@x, Zoe
  CHECK(mb.sorted({{sort_key::display_to, true}}) == seqs{1, 3, 5, 2, 4});
}

TEST_CASE("SORT: missing or broken headers do not fail") {
  mailbox mb;
  mb.add(3, "", 30, 1);
  mb.add(1, "no colon here\r\n\tand a continuation\r\n", 10, 2);
  mb.add(2, "Subject: unterminated", 20, 3);
  mb.add(4, std::string(100000, ':'), 40, 4);
  mb.add(5, "Subject: =?utf-8?q?\xff\r\nFrom: <<<@@@>>>\r\nDate: 99 Foo 99999\r\n", 50, 5);
  for (auto key : {sort_key::arrival, sort_key::cc, sort_key::date, sort_key::from, sort_key::size, sort_key::subject,
                   sort_key::to, sort_key::display_from, sort_key::display_to}) {
    auto out = mb.sorted({{key}});
    std::sort(out.begin(), out.end());
    CHECK(out == seqs{1, 2, 3, 4, 5});
  }
  CHECK(mb.sorted({{sort_key::date}}) == seqs{1, 2, 3, 4, 5});  // all fall back to INTERNALDATE
  CHECK(mb.sorted({{sort_key::subject}}) == seqs{1, 3, 4, 5, 2});
}

TEST_CASE("THREAD=REFERENCES: the RFC 5256 example response") {
  mailbox mb;
  mb.add(2, {{"Subject", "Alpha"}, {"Message-ID", id(2)}}, 100);
  mb.add(3, {{"Subject", "Beta"}, {"Message-ID", id(3)}}, 200);
  mb.add(6, {{"Subject", "Re: Beta"}, {"Message-ID", id(6)}, {"In-Reply-To", id(3)}}, 300);
  mb.add(4, {{"Subject", "Re: Beta"}, {"Message-ID", id(4)}, {"References", id(3) + " " + id(6)}}, 400);
  mb.add(23, {{"Subject", "Re: Beta"}, {"Message-ID", id(23)}, {"References", id(3) + "\r\n " + id(6) + " " + id(4)}},
         500);
  mb.add(44, {{"Subject", "Re: Beta"}, {"Message-ID", id(44)}, {"References", id(6)}}, 450);
  mb.add(7, {{"Subject", "Re: Beta"}, {"Message-ID", id(7)}, {"In-Reply-To", id(44)}}, 600);
  mb.add(96, {{"Subject", "Re: Beta"}, {"Message-ID", id(96)}, {"References", id(44) + " " + id(7)}}, 700);
  CHECK(mb.refs() == "(2)(3 6 (4 23)(44 7 96))");
  CHECK(mb.refs(true) == "(1002)(1003 1006 (1004 1023)(1044 1007 1096))");
  // The tree behind it.
  auto f = imap::build_threads(mb.msgs, thread_algorithm::references);
  REQUIRE(f.first_root != f.none);
  CHECK(mb.msgs[f.nodes[f.first_root].message].seq == 2);
  auto second = f.nodes[f.first_root].next_sibling;
  REQUIRE(second != f.none);
  CHECK(mb.msgs[f.nodes[second].message].seq == 3);
  CHECK(f.nodes[second].next_sibling == f.none);
  // The same messages in another order give the same threads.
  std::reverse(mb.msgs.begin(), mb.msgs.end());
  CHECK(mb.refs() == "(2)(3 6 (4 23)(44 7 96))");
}

TEST_CASE("THREAD=REFERENCES: sent date orders siblings, then sequence number") {
  mailbox mb;
  mb.add(1, header({{"Subject", "root"}, {"Message-ID", id(1)}, {"Date", "1 Jan 2020 00:00:00 +0000"}}), 9000);
  // Replies whose Date field disagrees with INTERNALDATE: the Date field wins; #4 and #5 tie.
  mb.add(2, header({{"Message-ID", id(2)}, {"In-Reply-To", id(1)}, {"Date", "1 Jan 2020 03:00:00 +0000"}}), 1);
  mb.add(3, header({{"Message-ID", id(3)}, {"In-Reply-To", id(1)}, {"Date", "1 Jan 2020 04:00:00 +0200"}}), 2);
  mb.add(5, header({{"Message-ID", id(5)}, {"In-Reply-To", id(1)}, {"Date", "1 Jan 2020 01:00:00 +0000"}}), 3);
  mb.add(4, header({{"Message-ID", id(4)}, {"In-Reply-To", id(1)}, {"Date", "1 Jan 2020 01:00:00 +0000"}}), 4);
  CHECK(mb.refs() == "(1 (4)(5)(3)(2))");
}

TEST_CASE("THREAD=REFERENCES: dummies are pruned or kept at the top") {
  mailbox one;
  one.add(3, {{"Subject", "Re: lost"}, {"Message-ID", id(3)}, {"In-Reply-To", "<gone@x>"}}, 1);
  CHECK(one.refs() == "(3)");  // a dummy with one child is replaced by it
  mailbox two = one;
  two.headers.clear();
  two.msgs.clear();
  two.add(3, {{"Subject", "Re: lost"}, {"Message-ID", id(3)}, {"In-Reply-To", "<gone@x>"}}, 1);
  two.add(5, {{"Subject", "Re: lost"}, {"Message-ID", id(5)}, {"References", "<gone@x>"}}, 2);
  CHECK(two.refs() == "((3)(5))");  // two children stay below the dummy
  // Dummies below the top are always spliced out; chains of dummies collapse.
  mailbox deep;
  deep.add(1, {{"Subject", "top"}, {"Message-ID", id(1)}}, 1);
  deep.add(2, {{"Subject", "a"}, {"Message-ID", id(2)}, {"References", id(1) + " <d1@x> <d2@x>"}}, 2);
  deep.add(3, {{"Subject", "b"}, {"Message-ID", id(3)}, {"References", id(1) + " <d1@x> <d3@x>"}}, 3);
  deep.add(4, {{"Subject", "c"}, {"Message-ID", id(4)}, {"References", "<e1@x> <e2@x> <e3@x>"}}, 4);
  CHECK(deep.refs() == "(1 (2)(3))(4)");
}

TEST_CASE("THREAD=REFERENCES: threads merge by base subject (step 5)") {
  mailbox a;  // a reply without references goes below the original
  a.add(1, {{"Subject", "Hello"}, {"Message-ID", id(1)}}, 1);
  a.add(2, {{"Subject", "Re: Hello"}, {"Message-ID", id(2)}}, 2);
  CHECK(a.refs() == "(1 2)");
  mailbox b;  // two originals become siblings under a dummy
  b.add(1, {{"Subject", "Hello"}}, 1);
  b.add(2, {{"Subject", "hello"}}, 2);
  CHECK(b.refs() == "((1)(2))");
  mailbox c;  // so do two replies
  c.add(1, {{"Subject", "Re: Hello"}}, 1);
  c.add(2, {{"Subject", "Fwd: HELLO"}}, 2);
  c.add(3, {{"Subject", "hello (fwd)"}}, 3);
  CHECK(c.refs() == "((1)(2)(3))");
  mailbox d;  // the original arrives after the reply: the reply still goes below it
  d.add(1, {{"Subject", "Re: Hello"}}, 1);
  d.add(2, {{"Subject", "Hello"}}, 2);
  CHECK(d.refs() == "(2 1)");
  mailbox e;  // empty subjects never merge
  e.add(1, {{"Subject", ""}}, 1);
  e.add(2, {{"Subject", "Re:"}}, 2);
  e.add(3, {}, 3);
  CHECK(e.refs() == "(1)(2)(3)");
  mailbox f;  // a message joins a dummy with the same subject
  f.add(1, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<p@x>"}}, 1);
  f.add(2, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<p@x>"}}, 2);
  f.add(3, {{"Subject", "Topic"}}, 3);
  CHECK(f.refs() == "((1)(2)(3))");
  mailbox g;  // two dummies with the same subject pool their children
  g.add(1, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<p@x>"}}, 1);
  g.add(2, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<p@x>"}}, 4);
  g.add(3, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<q@x>"}}, 2);
  g.add(4, {{"Subject", "Re: Topic"}, {"In-Reply-To", "<q@x>"}}, 3);
  CHECK(g.refs() == "((1)(3)(4)(2))");
  mailbox h;  // a whole thread (with children) goes below the original
  h.add(1, {{"Subject", "[list] Plans"}, {"Message-ID", id(1)}}, 1);
  h.add(2, {{"Subject", "Re: Plans"}, {"Message-ID", id(2)}}, 2);
  h.add(3, {{"Subject", "Re: Plans"}, {"Message-ID", id(3)}, {"In-Reply-To", id(2)}}, 3);
  CHECK(h.refs() == "(1 2 3)");
}

TEST_CASE("THREAD=REFERENCES: hostile references never loop or crash") {
  mailbox loop;  // A says B is its parent, B says A is
  loop.add(1, {{"Subject", "x"}, {"Message-ID", "<a@x>"}, {"References", "<b@x>"}}, 1);
  loop.add(2, {{"Subject", "x"}, {"Message-ID", "<b@x>"}, {"References", "<a@x>"}}, 2);
  CHECK(loop.refs() == "(2 1)");
  check_thread_response(loop, loop.refs());
  mailbox self;
  self.add(1, {{"Subject", "x"}, {"Message-ID", "<a@x>"}, {"References", "<a@x>"}}, 1);
  self.add(2, {{"Subject", "y"}, {"Message-ID", "<b@x>"}, {"References", "<b@x> <b@x>"}}, 2);
  CHECK(self.refs() == "(1)(2)");
  // "<b> <a> <b>": a is b's child (1A), then b would become a's child: refused.
  self.add(3, {{"Subject", "z"}, {"Message-ID", "<c@x>"}, {"References", "<b@x> <b@x> <a@x> <b@x>"}}, 3);
  CHECK(self.refs() == "(2 (1)(3))");
  mailbox cycle;  // a loop inside one References field
  cycle.add(1, {{"Subject", "x"}, {"Message-ID", "<z@x>"}, {"References", "<x@x> <y@x> <x@x>"}}, 1);
  CHECK(cycle.refs() == "(1)");
  mailbox ring;  // a longer ring across messages
  for (std::uint32_t k = 1; k <= 50; ++k)
    ring.add(k, {{"Subject", "ring"}, {"Message-ID", id(k)}, {"In-Reply-To", id(k % 50 + 1)}},
             static_cast<std::int64_t>(k));
  check_thread_response(ring, ring.refs());

  mailbox dup;  // a duplicated Message-ID: the first message keeps it
  dup.add(1, {{"Subject", "one"}, {"Message-ID", "<d@x>"}}, 1);
  dup.add(2, {{"Subject", "two"}, {"Message-ID", "<d@x>"}}, 2);
  dup.add(3, {{"Subject", "three"}, {"Message-ID", "<e@x>"}, {"In-Reply-To", "<d@x>"}}, 3);
  dup.add(4, {{"Subject", "four"}, {"Message-ID", "<d@x>"}, {"In-Reply-To", "<d@x>"}}, 4);
  CHECK(dup.refs() == "(1 (3)(4))(2)");

  mailbox noid;  // no or invalid Message-IDs
  noid.add(1, {{"Subject", "one"}}, 1);
  noid.add(2, {{"Subject", "two"}, {"Message-ID", "<>"}}, 2);
  noid.add(3, {{"Subject", "three"}, {"Message-ID", "no-brackets@x"}, {"In-Reply-To", "<@x> <a@> <>"}}, 3);
  noid.add(4, {{"Subject", "four"}, {"Message-ID", "<" + std::string(2000, 'a') + "@x>"}}, 4);
  noid.add(5, {{"Subject", "five"}, {"In-Reply-To", "<" + std::string(2000, 'a') + "@x>"}}, 5);
  CHECK(noid.refs() == "(1)(2)(3)(4)(5)");
}

TEST_CASE("THREAD=REFERENCES: In-Reply-To and References parsing") {
  mailbox mb;
  mb.add(1, {{"Subject", "a"}, {"Message-ID", " (comment) <real@x> "}}, 1);
  // In-Reply-To with an obsolete phrase: quoted strings and comments are skipped.
  mb.add(2, {{"Subject", "b"}, {"Message-ID", id(2)}, {"In-Reply-To", "\"Joe <fake@x>\" (said <fake2@x>) <real@x>"}}, 2);
  // References without a valid ID falls back to In-Reply-To.
  mb.add(3, {{"Subject", "c"}, {"Message-ID", id(3)}, {"References", "garbage <nope> (<fake@x>)"}, {"In-Reply-To", id(2)}},
         3);
  // Folding inside an ID is removed; "<<id>" reads the inner one.
  mb.add(4, {{"Subject", "d"}, {"Message-ID", id(4)}, {"References", "<re\r\n al@x>"}}, 4);
  mb.add(5, {{"Subject", "e"}, {"Message-ID", id(5)}, {"References", "<<" + id(4).substr(1)}}, 5);
  // Message-ID comparison is case-sensitive.
  mb.add(6, {{"Subject", "f"}, {"Message-ID", id(6)}, {"In-Reply-To", "<REAL@x>"}}, 6);
  CHECK(mb.refs() == "(1 (2 3)(4 5))(6)");
}

TEST_CASE("THREAD=REFERENCES: step 1B replaces a parent guessed from other References") {
  mailbox mb;
  mb.add(1, {{"Subject", "a"}, {"Message-ID", id(1)}}, 1);
  // #2 claims m99 (not here yet) is a child of m1 and #2's parent.
  mb.add(2, {{"Subject", "b"}, {"Message-ID", id(2)}, {"References", id(1) + " " + id(99)}}, 2);
  // m99 itself says its parent is unknown <m0>: that replaces the link to m1.
  mb.add(3, {{"Subject", "c"}, {"Message-ID", id(99)}, {"References", id(0)}}, 3);
  CHECK(mb.refs() == "(1)(3 2)");
  // Without a References field at all, 1B leaves it without a parent.
  mailbox mb2;
  mb2.add(1, {{"Subject", "a"}, {"Message-ID", id(1)}}, 1);
  mb2.add(2, {{"Subject", "b"}, {"Message-ID", id(2)}, {"References", id(1) + " " + id(99)}}, 2);
  mb2.add(3, {{"Subject", "c"}, {"Message-ID", id(99)}}, 3);
  CHECK(mb2.refs() == "(1)(3 2)");
}

TEST_CASE("THREAD=REFERENCES: only the last 100 references count") {
  auto build = [](int extra) {
    mailbox mb;
    mb.add(1, {{"Subject", "a"}, {"Message-ID", "<root@x>"}}, 1);
    std::string refs = "<root@x>";
    for (int i = 0; i < extra; ++i) refs += " <r" + std::to_string(i) + "@x>";
    mb.add(2, {{"Subject", "b"}, {"Message-ID", "<leaf@x>"}, {"References", refs}}, 2);
    return mb.refs();
  };
  CHECK(build(99) == "(1 2)");  // <root@x> is the 100th from the end
  CHECK(build(100) == "(1)(2)");
  CHECK(build(20000) == "(1)(2)");
}

TEST_CASE("THREAD=ORDEREDSUBJECT") {
  mailbox mb;
  mb.add(1, {{"Subject", "Apple"}}, 10);
  mb.add(2, {{"Subject", "Re: Banana"}}, 20);
  mb.add(3, {{"Subject", "Banana"}}, 5);
  mb.add(4, {{"Subject", "re: apple"}}, 30);
  mb.add(5, {{"Subject", "Cherry"}}, 1);
  mb.add(6, {{"Subject", "Fwd: Apple"}}, 40);
  mb.add(7, {{"Subject", "[x] apple"}}, 30);  // same date as #4: by sequence number
  CHECK(mb.ordered() == "(5)(3 2)(1 (4)(7)(6))");
  mailbox empty;
  CHECK(empty.ordered().empty());
  CHECK(empty.refs().empty());
  mailbox nosubject;  // messages without a subject form one thread
  nosubject.add(1, {}, 2);
  nosubject.add(2, {{"Subject", "Re:"}}, 1);
  CHECK(nosubject.ordered() == "(2 1)");
}

TEST_CASE("THREAD: a forest can be formatted with UIDs or sequence numbers") {
  mailbox mb;
  mb.add(1, {{"Subject", "s"}, {"Message-ID", id(1)}}, 1);
  mb.add(2, {{"Subject", "t"}, {"Message-ID", id(2)}, {"In-Reply-To", id(1)}}, 2);
  auto f = imap::build_threads(mb.msgs, thread_algorithm::references);
  CHECK(imap::format_threads(f, mb.msgs, false) == "(1 2)");
  CHECK(imap::format_threads(f, mb.msgs, true) == "(1001 1002)");
  // A malformed forest (a cycle, indexes out of range) prints something finite.
  imap::thread_forest bad;
  bad.nodes = {{0, 1, imap::thread_forest::none}, {1, 0, 7}};
  bad.first_root = 0;
  CHECK(imap::format_threads(bad, mb.msgs, false) == "(1 2)");
  bad.nodes[1].message = 99;
  CHECK_FALSE(imap::format_threads(bad, mb.msgs, false).empty());
}

TEST_CASE("THREAD: 10,000 messages in one chain, in any order, never recurse") {
  constexpr std::uint32_t n = 10000;
  SUBCASE("each replies to the previous one") {
    mailbox mb;
    for (std::uint32_t k = 1; k <= n; ++k)
      mb.add(k, {{"Subject", k == 1 ? "chain" : "Re: chain"}, {"Message-ID", id(k)}, {"In-Reply-To", id(k - 1)}},
             static_cast<std::int64_t>(k));
    CHECK((mb.refs() == seq_chain(1, n, 1)));
    auto ordered = mb.ordered();
    check_thread_response(mb, ordered);
    CHECK(ordered.substr(0, 9) == "(1 (2)(3)");
  }
  SUBCASE("sequence order is the reverse of the chain") {
    mailbox mb;
    for (std::uint32_t k = 1; k <= n; ++k)
      mb.add(k, {{"Subject", "x"}, {"Message-ID", id(k)}, {"In-Reply-To", id(k + 1)}},
             static_cast<std::int64_t>(n - k));
    CHECK((mb.refs() == seq_chain(n, 1, -1)));
  }
  SUBCASE("References list up to 120 ancestors, in shuffled sequence order") {
    std::vector<std::uint32_t> seq_of(n + 1);
    for (std::uint32_t k = 1; k <= n; ++k) seq_of[k] = k;
    std::mt19937 rng(42);
    std::shuffle(seq_of.begin() + 1, seq_of.end(), rng);
    mailbox mb;
    for (std::uint32_t k = 1; k <= n; ++k) {  // chain position k has sequence number seq_of[k]
      std::string refs;
      for (std::uint32_t a = k > 120 ? k - 120 : 1; a < k; ++a) refs += id(a) + " ";
      mb.add(seq_of[k], {{"Subject", "x"}, {"Message-ID", id(k)}, {"References", refs}},
             static_cast<std::int64_t>(k));
    }
    std::string want = "(";
    for (std::uint32_t k = 1; k <= n; ++k) want += std::to_string(seq_of[k]) + (k == n ? ")" : " ");
    CHECK((mb.refs() == want));
  }
  SUBCASE("everything replies to the first message") {
    mailbox mb;
    for (std::uint32_t k = 1; k <= n; ++k)
      mb.add(k, {{"Subject", "x"}, {"Message-ID", id(k)}, {"In-Reply-To", id(1)}}, static_cast<std::int64_t>(k));
    auto out = mb.refs();
    CHECK(out.substr(0, 12) == "(1 (2)(3)(4)");
    check_thread_response(mb, out);
  }
  SUBCASE("same subject, no references") {
    mailbox mb;
    for (std::uint32_t k = 1; k <= n; ++k) mb.add(k, {{"Subject", "same"}}, static_cast<std::int64_t>(k));
    auto out = mb.refs();
    CHECK(out.substr(0, 10) == "((1)(2)(3)");
    check_thread_response(mb, out);
  }
  SUBCASE("loop checks against a deep chain stay cheap") {
    // A 5,000-deep chain, then 5,000 messages that each try 50 times to make the chain's root a
    // child of its deepest message: every try is a loop the check must find.
    mailbox mb;
    std::uint32_t depth = 5000;
    for (std::uint32_t k = 1; k <= depth; ++k)
      mb.add(k, {{"Subject", "chain"}, {"Message-ID", id(k)}, {"In-Reply-To", id(k - 1)}},
             static_cast<std::int64_t>(k));
    std::string refs;
    for (int t = 0; t < 50; ++t) refs += id(depth) + " " + id(1) + " ";
    for (std::uint32_t k = depth + 1; k <= 2 * depth; ++k)
      mb.add(k, {{"Subject", "other " + std::to_string(k)}, {"Message-ID", id(k)}, {"References", refs}},
             static_cast<std::int64_t>(k));
    // They are replies to #1 (the last reference); the chain itself is untouched.
    auto want = "(1 (" + seq_chain(2, depth, 1).substr(1);
    for (std::uint32_t k = depth + 1; k <= 2 * depth; ++k) want += "(" + std::to_string(k) + ")";
    want += ")";
    auto out = mb.refs();
    CHECK((out == want));  // (parenthesised: doctest would print 50 KB on failure)
    check_thread_response(mb, out);
  }
}

TEST_CASE("SORT and THREAD: 10,000 messages with random headers") {
  constexpr std::uint32_t n = 10000;
  std::mt19937 rng(7);
  auto pick = [&](std::uint32_t bound) { return static_cast<std::uint32_t>(rng() % bound); };
  char const* subjects[] = {"Hello", "Re: Hello", "[list] Re: hello", "Fwd: Hello", "Status", "Re: status (fwd)",
                            "", "=?utf-8?q?caf=C3=A9?=", "[fwd: Status]", "Agenda"};
  char const* froms[] = {"a@x", "B <b@x>", "=?utf-8?q?C?= <c@x>", "", "group: d@x;", "E@x"};
  mailbox mb;
  for (std::uint32_t k = 1; k <= n; ++k) {
    std::string refs;
    for (auto r = pick(6); r > 0; --r) refs += "<m" + std::to_string(pick(3000)) + "@x> ";
    std::string hdr = header({{"Subject", subjects[pick(10)]},
                              {"From", froms[pick(6)]},
                              {"To", froms[pick(6)]},
                              {"Message-ID", "<m" + std::to_string(pick(3000)) + "@x>"},  // many duplicates
                              {"References", refs},
                              {"In-Reply-To", "<m" + std::to_string(pick(3000)) + "@x>"},
                              {"Date", "1 Jan 2020 " + std::to_string(pick(24)) + ":00:00 +0000"}});
    mb.add(k, hdr, pick(100), pick(1000));
  }
  for (auto key : {sort_key::arrival, sort_key::cc, sort_key::date, sort_key::from, sort_key::size, sort_key::subject,
                   sort_key::to, sort_key::display_from, sort_key::display_to}) {
    for (bool reverse : {false, true}) {
      std::vector<sort_criterion> by = {{key, reverse}};
      auto order = imap::sort_messages(mb.msgs, by);
      auto sorted = order;
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 0; i < sorted.size(); ++i) REQUIRE(sorted[i] == i);
    }
  }
  std::vector<sort_criterion> arrival = {{sort_key::arrival, true}};
  auto order = imap::sort_messages(mb.msgs, arrival);
  for (std::size_t i = 1; i < order.size(); ++i) {
    auto const& a = mb.msgs[order[i - 1]];
    auto const& b = mb.msgs[order[i]];
    REQUIRE((a.internal_date > b.internal_date || (a.internal_date == b.internal_date && a.seq < b.seq)));
  }
  check_thread_response(mb, mb.refs());
  check_thread_response(mb, mb.ordered());
}
