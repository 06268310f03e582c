// The interpreter on the examples of RFC 5228 and the extension RFCs: script + message -> actions.
#include <doctest/doctest.h>

#include "sieve/helpers.hpp"

using namespace mailroom::sieve;
using namespace mailroom::sieve::testing;

namespace {

std::string message_with(std::string const& headers, std::string const& body = "hello\r\n") {
  return headers + "\r\n" + body;
}

// RFC 5228 section 9.
std::string const rfc5228_example = R"(#
# Example Sieve Filter
require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        fileinto "personal";
        }
)";

}  // namespace

TEST_CASE("sieve run: RFC 5228 section 9 example") {
  CHECK(run_on(rfc5228_example, message_with("Sender: owner-ietf-mta-filters@imc.org\r\nTo: me@example.com\r\n")) ==
        v{"fileinto \"filter\""});
  CHECK(run_on(rfc5228_example, message_with("From: a@example.com\r\nTo: me@elsewhere.org\r\n")) == v{"keep"});
  CHECK(run_on(rfc5228_example, message_with("From: a@b.org\r\nTo: other@b.org\r\n")) == v{"fileinto \"spam\""});
  CHECK(run_on(rfc5228_example, message_with("From: a@b.org\r\nCc: me@example.com\r\nSubject: make lots of money FAST\r\n")) ==
        v{"fileinto \"spam\""});
  CHECK(run_on(rfc5228_example, message_with("From: a@b.org\r\nCc: me@example.com\r\nSubject: lunch\r\n")) ==
        v{"fileinto \"personal\""});
}

TEST_CASE("sieve run: implicit keep, keep, discard, stop, redirect, :copy") {
  CHECK(run_on("") == v{"implicit keep"});
  CHECK(run_on("keep;") == v{"keep"});
  CHECK(run_on("discard;") == v{"discard"});
  CHECK(run_on("stop; discard;") == v{"implicit keep"});
  CHECK(run_on("redirect \"a@example.org\";") == v{"redirect \"a@example.org\""});
  CHECK(run_on("require \"copy\"; redirect :copy \"a@example.org\";") ==
        v{"redirect :copy \"a@example.org\"", "implicit keep"});
  CHECK(run_on("redirect \"a@example.org\"; redirect \"a@EXAMPLE.org\"; redirect \"A@example.org\"; keep; keep;") ==
        v{"redirect \"a@example.org\"", "redirect \"A@example.org\"", "keep"});
  CHECK(run_on("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\"; fileinto \"A\"; fileinto \"INBOX\";") ==
        v{"fileinto \"A\"", "fileinto \"INBOX\""});
  CHECK(run_on("if false { discard; } elsif true { keep; } else { discard; }") == v{"keep"});
  CHECK(run_on("if true { keep; } elsif true { discard; }") == v{"keep"});
}

TEST_CASE("sieve run: header, address, envelope, exists, size (RFC 5228 section 5)") {
  CHECK(run_on("if header :contains \"Subject\" \"present for you \xe2\x98\xba\" { discard; }") == v{"discard"});
  CHECK(run_on("if header :is \"X-Caffeine\" \"\" { discard; }") == v{"implicit keep"});
  CHECK(run_on("if header :contains \"X-Caffeine\" \"\" { discard; }") == v{"discard"});
  CHECK(run_on("if header :contains \"X-None\" \"\" { discard; }") == v{"implicit keep"});
  CHECK(run_on("if header :comparator \"i;octet\" :contains \"x-caffeine\" \"c8h10\" { discard; }") == v{"implicit keep"});
  CHECK(run_on("if header :contains \"x-caffeine\" \"c8h10\" { discard; }") == v{"discard"});
  CHECK(run_on("if address :is :localpart \"From\" \"coyote\" { discard; }") == v{"discard"});
  CHECK(run_on("if address :is :domain \"cc\" \"EXAMPLE.com\" { discard; }") == v{"discard"});
  CHECK(run_on("if address :is :all \"to\" \"roadrunner+birds@acme.example.com\" { discard; }") == v{"discard"});
  CHECK(run_on("if address :is \"from\" \"Wile E. Coyote\" { discard; }") == v{"implicit keep"});
  CHECK(run_on("if address :localpart :is \"from\" \"john q\\\"public\" { discard; }",
               message_with("From: <\"john q\\\"public\"@example.org>\r\n")) == v{"discard"});
  CHECK(run_on("require \"envelope\"; if envelope :all :is \"from\" \"coyote@desert.example.org\" { discard; }") ==
        v{"discard"});
  CHECK(run_on("require \"envelope\"; if envelope :domain :is \"to\" \"acme.example.com\" { discard; }") == v{"discard"});
  CHECK(run_on("if exists [\"From\", \"Date\"] { discard; }") == v{"discard"});
  CHECK(run_on("if exists [\"From\", \"X-Nope\"] { discard; }") == v{"implicit keep"});
  CHECK(run_on("if size :over 100 { discard; }") == v{"discard"});
  CHECK(run_on("if size :under 1K { discard; }") == v{"discard"});
  CHECK(run_on("if size :over 1K { discard; }") == v{"implicit keep"});
  CHECK(run_on("if allof (true, false) { discard; }") == v{"implicit keep"});
  CHECK(run_on("if anyof (false, not false) { discard; }") == v{"discard"});
}

TEST_CASE("sieve run: reject and ereject (RFC 5429) and their conflicts") {
  CHECK(run_on("require \"reject\"; reject \"go away\";") == v{"reject \"go away\""});
  CHECK(run_on("require \"ereject\"; ereject \"no\"; discard;") == v{"ereject \"no\"", "discard"});
  auto conflict = run_on("require [\"reject\", \"fileinto\"];\nfileinto \"A\";\nreject \"no\";");
  REQUIRE(conflict.size() == 2);
  CHECK(conflict[0] == "implicit keep");
  CHECK(conflict[1] == "error: line 3: reject/ereject conflicts with fileinto \"A\"");
  CHECK(run_on("require \"reject\"; keep; reject \"x\";").back().find("conflicts with keep") != std::string::npos);
  CHECK(run_on("require \"reject\"; redirect \"a@b.c\"; reject \"x\";").front() == "implicit keep");
  CHECK(run_on("require \"reject\"; reject \"x\"; reject \"y\";").back() == "error: line 1: more than one reject/ereject");
}

TEST_CASE("sieve run: variables (RFC 5229)") {
  CHECK(run_on(R"(require ["variables", "reject"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
reject "${vacation}";)") == v{"reject \"Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n\""});
  std::string mods = R"(require ["variables", "reject"]; set "a" "juMBlEd lETteRS";)";
  CHECK(run_on(mods + "set :length \"b\" \"${a}\"; reject \"${b}\";") == v{"reject \"15\""});
  CHECK(run_on(mods + "set :lower \"b\" \"${a}\"; reject \"${b}\";") == v{"reject \"jumbled letters\""});
  CHECK(run_on(mods + "set :upperfirst \"b\" \"${a}\"; reject \"${b}\";") == v{"reject \"JuMBlEd lETteRS\""});
  CHECK(run_on(mods + "set :upperfirst :lower \"b\" \"${a}\"; reject \"${b}\";") == v{"reject \"Jumbled letters\""});
  CHECK(run_on(mods + "set :quotewildcard \"b\" \"Rock*\"; reject \"${b}\";") == v{"reject \"Rock\\\\*\""});
  CHECK(run_on(mods + "reject \"${unknown}|${a|${}\";") == v{"reject \"|${a|${}\""});
  CHECK(run_on("require [\"variables\"]; set \"x\" \"a\"; if string :is \"${x}${x}\" \"aa\" { discard; }") == v{"discard"});
  CHECK(run_on("require [\"variables\", \"relational\"]; if string :count \"eq\" [\"\", \"a\", \"b\"] \"2\" { discard; }") ==
        v{"discard"});
  // Section 3.2: match variables.
  std::string const match_script = R"(require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}
if header :matches "Subject" "[*] *" {
    fileinto "INBOX.lists.${1}"; stop;
}
if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] {
    fileinto "INBOX.business.${2}"; stop;
}
if anyof (true, address :domain :matches "To" "*.com") {
    fileinto "x${0}y"; stop;
}
)";
  CHECK(run_on(match_script, message_with("List-ID: Sieve <sieve@ietf.org>\r\n")) == v{"fileinto \"INBOX.lists.sieve\""});
  CHECK(run_on(match_script, message_with("Subject: [acme-users] [fwd] version 1.0 is out\r\n")) ==
        v{"fileinto \"INBOX.lists.acme-users\""});
  CHECK(run_on(match_script, message_with("To: coyote@ACME.Example.COM\r\n")) == v{"fileinto \"INBOX.business.ACME.Example\""});
  CHECK(run_on(match_script, message_with("To: someone@else.org\r\n")) == v{"fileinto \"xy\""});
}

TEST_CASE("sieve run: relational (RFC 5231)") {
  std::string const msg = message_with(
      "Received: from a\r\nReceived: from b\r\nTo: foo@example.com.invalid, baz@example.com.invalid\r\n"
      "Cc: qux@example.com.invalid\r\nFrom: Foo Bar <foo@example.com.invalid>\r\nX-Priority: 1\r\n");
  std::string const req = "require [\"relational\", \"comparator-i;ascii-numeric\"];\n";
  auto yes = [&](std::string const& test) { return run_on(req + "if " + test + " { discard; }", msg) == v{"discard"}; };
  CHECK(yes("address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] [\"3\"]"));
  CHECK_FALSE(yes("address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\"] [\"3\"]"));
  CHECK(yes("header :count \"eq\" :comparator \"i;ascii-numeric\" \"received\" \"2\""));
  CHECK(yes("header :value \"lt\" :comparator \"i;ascii-numeric\" [\"x-priority\"] [\"3\"]"));
  CHECK_FALSE(yes("header :value \"gt\" :comparator \"i;ascii-numeric\" [\"x-priority\"] [\"3\"]"));
  CHECK(yes("header :value \"gt\" :comparator \"i;ascii-numeric\" [\"from\"] [\"3\"]"));  // no digits: infinity
  CHECK(yes("address :value \"gt\" :all :comparator \"i;ascii-casemap\" [\"from\"] [\"M\"]") == false);
  CHECK(yes("address :value \"lt\" :localpart [\"from\"] [\"g\"]"));
  CHECK(yes("header :value \"eq\" :comparator \"i;ascii-numeric\" \"x-priority\" \"0001\""));
}

TEST_CASE("sieve run: subaddress (RFC 5233) and index (RFC 5260)") {
  std::string const req = "require [\"envelope\", \"subaddress\", \"fileinto\"];\n";
  environment env = default_env(default_message);
  env.envelope_to = "ken+mta-filters@example.org";
  CHECK(run_on(req + "if envelope :user \"to\" \"ken\" { fileinto \"mailinglists\"; }", env) == v{"fileinto \"mailinglists\""});
  CHECK(run_on(req + "if envelope :detail \"to\" \"mta-filters\" { fileinto \"x\"; }", env) == v{"fileinto \"x\""});
  env.envelope_to = "ken@example.org";
  CHECK(run_on(req + "if envelope :detail \"to\" \"\" { fileinto \"x\"; }", env) == v{"implicit keep"});
  CHECK(run_on(req + "if address :detail \"to\" \"birds\" { fileinto \"y\"; }") == v{"fileinto \"y\""});
  std::string const msg = message_with("Received: from last\r\nReceived: from middle\r\nReceived: from first\r\n");
  CHECK(run_on("require \"index\"; if header :index 2 :contains \"received\" \"middle\" { discard; }", msg) == v{"discard"});
  CHECK(run_on("require \"index\"; if header :index 1 :last :contains \"received\" \"first\" { discard; }", msg) == v{"discard"});
  CHECK(run_on("require \"index\"; if header :index 1 :contains \"received\" \"first\" { discard; }", msg) == v{"implicit keep"});
  CHECK(run_on("require \"index\"; if header :index 9 :contains \"received\" \"\" { discard; }", msg) == v{"implicit keep"});
}

TEST_CASE("sieve run: imap4flags (RFC 5232)") {
  std::string const req = "require [\"imap4flags\", \"fileinto\", \"variables\"];\n";
  CHECK(run_on(req + "if header :contains \"from\" \"coyote\" { setflag \"\\\\Flagged\"; fileinto \"INBOX.From Boss\"; }") ==
        v{"fileinto :flags \"\\\\Flagged\" \"INBOX.From Boss\""});
  CHECK(run_on(req + "addflag \"\\\\Seen A\"; addflag [\"b\", \"a\"]; removeflag \"\\\\seen\";") ==
        v{"implicit keep :flags \"A b\""});
  CHECK(run_on(req + "addflag \"x\"; keep :flags \"y\"; fileinto \"f\";") == v{"keep :flags \"y\"", "fileinto :flags \"x\" \"f\""});
  CHECK(run_on(req + "setflag \"v\" \"a b\"; addflag \"v\" \"c\"; if hasflag :is \"v\" \"b\" { fileinto \"${v}\"; }") ==
        v{"fileinto \"a b c\""});
  CHECK(run_on(req + "addflag \"\\\\Deleted\"; if hasflag :contains \"delete\" { discard; }") == v{"discard"});
  CHECK(run_on("require [\"imap4flags\", \"relational\"]; addflag \"a b c\"; if hasflag :count \"eq\" \"3\" { discard; }") ==
        v{"discard"});
}

TEST_CASE("sieve run: date and currentdate (RFC 5260)") {
  std::string const req = "require [\"date\", \"relational\", \"fileinto\", \"variables\"];\n";
  // Date: Fri, 12 Aug 2005 21:13:00 -0700 ; now 2005-08-13 04:13:00 UTC.
  CHECK(run_on(req + R"(if allof(date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "22") { fileinto "urgent"; })") == v{"fileinto \"urgent\""});
  CHECK(run_on(req + R"(if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year"  "${1}"; }
fileinto "${month}-${year}";)") == v{"fileinto \"08-2005\""});
  auto part = [&](std::string const& tag, std::string const& p) {
    auto r = run_on(req + "if date " + tag + " :matches \"date\" \"" + p + "\" \"*\" { fileinto \"${0}\"; }");
    return r.empty() ? std::string() : r.front();
  };
  CHECK(part(":zone \"+0000\"", "date") == "fileinto \"2005-08-13\"");
  CHECK(part(":originalzone", "date") == "fileinto \"2005-08-12\"");
  CHECK(part(":originalzone", "time") == "fileinto \"21:13:00\"");
  CHECK(part(":originalzone", "iso8601") == "fileinto \"2005-08-12T21:13:00-07:00\"");
  CHECK(part(":originalzone", "std11") == "fileinto \"Fri, 12 Aug 2005 21:13:00 -0700\"");
  CHECK(part(":zone \"+0200\"", "zone") == "fileinto \"+0200\"");
  CHECK(part(":zone \"+0000\"", "weekday") == "fileinto \"6\"");
  CHECK(part(":zone \"+0000\"", "julian") == "fileinto \"53595\"");
  CHECK(part("", "hour") == "fileinto \"04\"");  // local zone of the environment: UTC
  environment env = default_env(default_message);
  env.local_zone = 60;
  CHECK(run_on(req + "if currentdate :is \"hour\" \"05\" { discard; }", env) == v{"discard"});
  CHECK(run_on(req + "if date :is \"x-none\" \"year\" \"2005\" { discard; }") == v{"implicit keep"});
  CHECK(run_on(req + "if date :is \"subject\" \"year\" \"2005\" { discard; }") == v{"implicit keep"});
  std::string recv = message_with("Received: from x by y; Tue, 1 Mar 2022 10:00:00 +0000 (UTC)\r\n");
  CHECK(run_on(req + "if date :is \"received\" \"year\" \"2022\" { discard; }", recv) == v{"discard"});
}

TEST_CASE("sieve run: mailbox (RFC 5490) and fileinto :create") {
  std::string const req = "require [\"mailbox\", \"fileinto\"];\n";
  CHECK(run_on(req + "if mailboxexists \"Junk\" { fileinto \"Junk\"; }") == v{"fileinto \"Junk\""});
  CHECK(run_on(req + "if mailboxexists [\"Junk\", \"Nope\"] { fileinto \"Junk\"; }") == v{"implicit keep"});
  CHECK(run_on(req + "fileinto :create \"New\";") == v{"fileinto :create \"New\""});
}

TEST_CASE("sieve run: body (RFC 5173)") {
  std::string const req = "require [\"body\", \"fileinto\"];\n";
  CHECK(run_on(req + "if body :contains \"anvil\" { discard; }") == v{"discard"});
  CHECK(run_on(req + "if body :raw :contains \"anvil\" { discard; }") == v{"discard"});
  CHECK(run_on(req + "if body :contains \"Subject\" { discard; }") == v{"implicit keep"});
  std::string const multi = message_with(
      "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n",
      "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      "Caf=E9 meeting\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      "PGI+Ym9sZDwvYj4=\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nsecret\r\n--b--\r\n");
  CHECK(run_on(req + "if body :text :contains \"Caf\xc3\xa9\" { discard; }", multi) == v{"discard"});
  CHECK(run_on(req + "if body :content \"text/html\" :contains \"<b>bold\" { discard; }", multi) == v{"discard"});
  CHECK(run_on(req + "if body :content \"text/plain\" :contains \"bold\" { discard; }", multi) == v{"implicit keep"});
  CHECK(run_on(req + "if body :text :contains \"secret\" { discard; }", multi) == v{"implicit keep"});
  CHECK(run_on(req + "if body :content \"application\" :contains \"secret\" { discard; }", multi) == v{"discard"});
  CHECK(run_on(req + "if body :raw :contains \"PGI+\" { discard; }", multi) == v{"discard"});
}

TEST_CASE("sieve run: vacation (RFC 5230) and its rules") {
  std::string const script = R"(require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation :days 3 "I'm out -- call me at 321-1234";
})";
  std::string const msg = message_with(
      "From: Wile <coyote@desert.example.org>\r\nTo: roadrunner+birds@acme.example.com\r\nSubject: hi\r\n"
      "Message-ID: <1@d.e>\r\n");
  memory_vacation_store store;
  environment env = default_env(msg);
  env.vacation = &store;
  auto first = run_on(script, env);
  REQUIRE(first.size() == 2);
  CHECK(first[0] == "vacation to \"coyote@desert.example.org\" subject \"Auto: hi\" period 259200 \"I'm out -- call me at 321-1234\"");
  CHECK(first[1] == "implicit keep");
  CHECK(store.size() == 1);
  CHECK(run_on(script, env) == v{"implicit keep"});  // answered already within 3 days
  env.now += 4 * 86400;
  CHECK(run_on(script, env).size() == 2);

  auto replies = [&](std::string const& headers, std::string const& from = "coyote@desert.example.org") {
    memory_vacation_store fresh;
    std::string m = message_with(headers);
    environment e = default_env(m);
    e.envelope_from = from;
    e.vacation = &fresh;
    return run_on(script, e).size() == 2;
  };
  std::string const to_me = "To: roadrunner+birds@acme.example.com\r\n";
  CHECK(replies(to_me));
  CHECK_FALSE(replies(to_me, ""));
  CHECK_FALSE(replies(to_me, "MAILER-DAEMON@x.org"));
  CHECK_FALSE(replies(to_me, "owner-list@x.org"));
  CHECK_FALSE(replies(to_me, "list-request@x.org"));
  CHECK_FALSE(replies(to_me, "roadrunner+birds@acme.example.com"));
  CHECK_FALSE(replies(to_me + "List-Id: <l.x.org>\r\n"));
  CHECK_FALSE(replies(to_me + "Precedence: bulk\r\n"));
  CHECK_FALSE(replies(to_me + "Auto-Submitted: auto-replied\r\n"));
  CHECK(replies(to_me + "Auto-Submitted: no\r\n"));
  CHECK_FALSE(replies("To: someone@else.org\r\n"));
  CHECK(replies("To: someone@else.org\r\nBcc: Roadrunner+Birds@ACME.example.com\r\n"));
  std::string const with_addresses = "require \"vacation\"; vacation :addresses \"rr@alias.example\" :subject \"away\" \"x\";";
  memory_vacation_store s2;
  std::string m2 = message_with("To: rr@alias.example\r\n");
  environment e2 = default_env(m2);
  e2.vacation = &s2;
  CHECK(run_on(with_addresses, e2).front().find("subject \"away\"") != std::string::npos);
  CHECK(run_on("require \"vacation\"; vacation \"a\"; vacation \"b\";").back() == "error: line 1: more than one vacation");
  CHECK(run_on("require [\"vacation\", \"reject\"]; vacation \"a\"; reject \"b\";", env).front() == "implicit keep");
  CHECK(run_on("require \"vacation-seconds\"; vacation :seconds 30 \"a\";", env).front().find("period 30") != std::string::npos);
}
