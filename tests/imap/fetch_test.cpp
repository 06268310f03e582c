#include <doctest/doctest.h>

#include <string>

#include "mailroom/imap/fetch.hpp"

using namespace mailroom;

TEST_CASE("ENVELOPE: fields, defaults for Sender and Reply-To, groups, NIL") {
  std::string msg = "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
                    "From: Terry Gray <gray@cac.washington.edu>\r\n"
                    "Subject: IMAP4rev2 WG mtg summary\r\n"
                    "To: imap@cac.washington.edu\r\n"
                    "Cc: minutes@CNRI.Reston.VA.US, \"John Klensin\" <KLENSIN@MIT.EDU>\r\n"
                    "Message-Id: <B27397-0100000@cac.washington.edu>\r\n\r\nbody\r\n";
  auto p = mime::parse(msg).value();
  CHECK(imap::envelope(p) ==
        "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary\" "
        "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
        "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) "
        "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
        "\"<B27397-0100000@cac.washington.edu>\")");
  auto q = mime::parse("To: Team: a@b;\r\n\r\n").value();
  CHECK(imap::envelope(q) == "(NIL NIL NIL NIL NIL ((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)");
  CHECK(imap::imap_string("Gr\xc3\xbc\xc3\x9f") == "{6}\r\nGr\xc3\xbc\xc3\x9f");
}

TEST_CASE("BODYSTRUCTURE and BODY of a simple and a multipart message") {
  std::string simple = "Subject: x\r\n\r\nline 1\r\nline 2\r\n";
  auto s = mime::parse(simple).value();
  CHECK(imap::body_structure(simple, s, false) == "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 16 2)");
  CHECK(imap::body_structure(simple, s, true) ==
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 16 2 NIL NIL NIL NIL)");
  std::string multi =
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
      "--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=a.pdf\r\n\r\nQUJD\r\n"
      "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nin\r\n"
      "--b--\r\n";
  auto m = mime::parse(multi).value();
  CHECK(imap::body_structure(multi, m, false) ==
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 2 0)"
        "(\"APPLICATION\" \"PDF\" (\"NAME\" \"a.pdf\") NIL NIL \"BASE64\" 4)"
        "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 20 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 2 0) 2) \"MIXED\")");
  auto ext = imap::body_structure(multi, m, true);
  CHECK(ext.find("(\"ATTACHMENT\" (\"FILENAME\" \"a.pdf\"))") != std::string::npos);
  CHECK(ext.find(" \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)") != std::string::npos);
}
