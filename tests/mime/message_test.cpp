#include <doctest/doctest.h>

#include <string>

#include "mailroom/core/error.hpp"
#include "mailroom/mime/message.hpp"

using namespace mailroom;

namespace {
std::string_view body_of(std::string const& msg, mime::part const& p) {
  return std::string_view(msg).substr(p.body_begin, p.end - p.body_begin);
}
}  // namespace

TEST_CASE("header fields: folding, case, malformed lines, CRLF or LF") {
  std::string msg = "Subject: hello\r\n  world\r\nFROM: a@b\r\nbroken line\r\nX-Empty:\r\n\r\nbody\r\n";
  auto p = mime::parse(msg).value();
  REQUIRE(p.fields.size() == 3);
  CHECK(mime::unfold(*p.header("subject")) == "hello  world");
  CHECK(mime::unfold(*p.header("From")) == "a@b");
  CHECK(p.header("x-empty")->empty());
  CHECK(body_of(msg, p) == "body\r\n");
  CHECK(p.type == "text");
  CHECK(p.subtype == "plain");
  CHECK(p.body_lines == 1);
  std::string lf = "Subject: x\n\nline1\nline2";
  auto q = mime::parse(lf).value();
  CHECK(body_of(lf, q) == "line1\nline2");
  CHECK(q.body_lines == 1);  // line ends, as Dovecot counts them
  std::string no_body = "Subject: only a header\r\n";
  auto r = mime::parse(no_body).value();
  CHECK(r.body_begin == no_body.size());
}

TEST_CASE("Content-Type parameters: quoting, comments, RFC 2231 continuations and charsets") {
  auto c = mime::parse_parameterized(" Text/HTML (a comment); charset=\"utf-8\" ; Name=\"a \\\"q\\\" b;c\"");
  CHECK(c.value == "text/html");
  CHECK(c.param("charset") == "utf-8");
  CHECK(c.param("name") == "a \"q\" b;c");
  auto d = mime::parse_parameterized("attachment; filename*0*=us-ascii'en'This%20is%20; filename*1=\"long\"; "
                                     "title*=iso-8859-1''%A3%20rate");
  CHECK(d.value == "attachment");
  CHECK(d.param("filename") == "This is long");
  CHECK(d.param("title") == "\xa3 rate");
}

TEST_CASE("multipart: preamble, parts, nested multipart, message/rfc822, epilogue, bad boundaries") {
  std::string msg =
      "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
      "preamble\r\n"
      "--outer\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n\r\n"
      "first part\r\n"
      "--outer\r\n"
      "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
      "--inner\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--\r\n"
      "--outerX not a delimiter\r\n"
      "--outer  \r\n"
      "Content-Type: message/rfc822\r\n\r\n"
      "Subject: inner message\r\n\r\ninner body\r\n"
      "--outer--\r\n"
      "epilogue\r\n";
  auto p = mime::parse(msg).value();
  CHECK(p.multipart());
  CHECK(p.subtype == "mixed");
  REQUIRE(p.children.size() == 3);
  CHECK(body_of(msg, p.children[0]) == "first part");
  CHECK(p.children[0].params[0].second == "utf-8");
  auto const& alt = p.children[1];
  CHECK(alt.subtype == "alternative");
  REQUIRE(alt.children.size() == 2);
  CHECK(body_of(msg, alt.children[0]) == "plain");
  CHECK(alt.children[0].params[0] == std::pair<std::string, std::string>{"charset", "us-ascii"});  // the default
  CHECK(alt.children[1].subtype == "html");
  CHECK(body_of(msg, alt.children[1]) == "<p>html</p>");
  auto const& rfc822 = p.children[2];
  CHECK(rfc822.is_message());
  REQUIRE(rfc822.children.size() == 1);
  CHECK(mime::unfold(*rfc822.children[0].header("Subject")) == "inner message");
  CHECK(body_of(msg, rfc822.children[0]) == "inner body");
  // multipart/digest parts default to message/rfc822.
  std::string digest = "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n\r\nSubject: d1\r\n\r\nx\r\n--b--\r\n";
  auto dg = mime::parse(digest).value();
  REQUIRE(dg.children.size() == 1);
  CHECK(dg.children[0].is_message());
  // A multipart without boundary, or never closed: still a tree, no failure.
  CHECK(mime::parse("Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n").value().children.empty());
  auto open = mime::parse("Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nunclosed\r\n").value();
  REQUIRE(open.children.size() == 1);
  // Garbage Content-Type: text/plain.
  auto g = mime::parse("Content-Type: garbage\r\n\r\nx").value();
  CHECK(g.type == "text");
}

TEST_CASE("hostile: nesting depth and part count limits") {
  std::string deep;
  for (int i = 0; i < 150; ++i) deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" + std::to_string(i) + "\r\n";
  auto r = mime::parse(deep);
  REQUIRE(!r);
  CHECK(r.error() == errc::limit_exceeded);
  std::string many = "Content-Type: multipart/mixed; boundary=m\r\n\r\n";
  for (int i = 0; i < 20000; ++i) many += "--m\r\n\r\nx\r\n";
  r = mime::parse(many);
  REQUIRE(!r);
  CHECK(r.error() == errc::limit_exceeded);
  mime::limits small;
  small.max_fields = 3;
  CHECK(!mime::parse("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small));
  std::string fine = "Content-Type: multipart/mixed; boundary=m\r\n\r\n";
  for (int i = 0; i < 100; ++i) fine += "--m\r\n\r\nx\r\n";
  CHECK(mime::parse(fine).value().children.size() == 100);
}
