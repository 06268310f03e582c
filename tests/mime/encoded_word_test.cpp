#include <doctest/doctest.h>

#include <string>

#include "mailroom/core/text.hpp"
#include "mailroom/mime/encoded_word.hpp"

using mailroom::mime::charset_to_utf8;
using mailroom::mime::decode_header_value;
using mailroom::text::is_valid_utf8;

TEST_CASE("encoded words: B and Q, any case, charsets converted to UTF-8") {
  CHECK(decode_header_value("=?UTF-8?B?Y2Fmw6k=?=") == "caf\xc3\xa9");
  CHECK(decode_header_value("=?utf-8?b?Y2Fmw6k=?=") == "caf\xc3\xa9");
  CHECK(decode_header_value("=?utf-8?q?caf=C3=A9?=") == "caf\xc3\xa9");
  CHECK(decode_header_value("=?UTF-8?Q?caf=c3=a9?=") == "caf\xc3\xa9");  // lower-case hex is accepted
  CHECK(decode_header_value("=?utf-8?q?a_b?=") == "a b");
  CHECK(decode_header_value("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>") ==
        "Andr\xc3\xa9 Pirard <PIRARD@vm1.ulg.ac.be>");
  CHECK(decode_header_value("=?latin1?q?=FC?=") == "\xc3\xbc");
  CHECK(decode_header_value("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>") == "Keith Moore <moore@cs.utk.edu>");
  // Windows-1252 punctuation; ISO-8859-1 and US-ASCII labels are read as Windows-1252 too.
  CHECK(decode_header_value("=?windows-1252?q?=80_=93x=94?=") == "\xe2\x82\xac \xe2\x80\x9cx\xe2\x80\x9d");
  CHECK(decode_header_value("=?iso-8859-1?q?=92?=") == "\xe2\x80\x99");
  CHECK(decode_header_value("=?us-ascii?q?=E9?=") == "\xc3\xa9");
  CHECK(decode_header_value("=?cp1252?q?=81?=") == "\xef\xbf\xbd");  // undefined in Windows-1252
  CHECK(decode_header_value("=?iso-8859-15?q?=A4=BD?=") == "\xe2\x82\xac\xc5\x93");
  // RFC 2231 language suffix.
  CHECK(decode_header_value("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore");
  CHECK(decode_header_value("=?utf-8*de-CH?b?w7w=?=") == "\xc3\xbc");
  // Padding may be missing.
  CHECK(decode_header_value("=?utf-8?b?YWI?=") == "ab");
  CHECK(decode_header_value("=?utf-8?b?YQ?=") == "a");
  CHECK(decode_header_value("=?utf-8?q?" "?=") == "");  // split: "??=" is a trigraph
  CHECK(decode_header_value("=?utf-8?b?" "?=") == "");
}

TEST_CASE("encoded words: RFC 2047 section 8 examples on white space") {
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=)") == "(a)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= b)") == "(a b)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)") == "(ab)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)") == "(ab)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)") == "(ab)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a_b?=)") == "(a b)");
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= =?UTF-8?Q?_b?=)") == "(a b)");  // the RFC uses ISO-8859-2
  CHECK(decode_header_value("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)") == "(a =?ISO-8859-2?Q?_b?=)");  // unknown here
  // Text before and after words is kept, folding is unfolded, the value trimmed.
  CHECK(decode_header_value("  Re: =?utf-8?q?caf=C3=A9?= au lait \r\n") == "Re: caf\xc3\xa9 au lait");
  CHECK(decode_header_value("a\r\n b") == "a b");
  CHECK(decode_header_value("x =?utf-8?q?a?= y =?utf-8?q?b?= z") == "x a y b z");
  // Words glued to text (not RFC 2047, but common) are decoded too.
  CHECK(decode_header_value("pre=?utf-8?q?X?=post") == "preXpost");
  CHECK(decode_header_value("=?utf-8?q?a?==?utf-8?q?b?=") == "ab");
}

TEST_CASE("encoded words: a UTF-8 character split across adjacent words is joined") {
  // U+00E9 = C3 A9, split between two words of the same charset.
  CHECK(decode_header_value("=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=") == "caf\xc3\xa9");
  CHECK(decode_header_value("=?utf-8?b?w6k=?= =?UTF-8?B?w6k=?=") == "\xc3\xa9\xc3\xa9");
  // A different charset between them ends the run: each half is invalid on its own.
  CHECK(decode_header_value("=?utf-8?q?=C3?= =?latin1?q?x?= =?utf-8?q?=A9?=") ==
        "\xef\xbf\xbdx\xef\xbf\xbd");
  // Text between them ends the run as well.
  CHECK(decode_header_value("=?utf-8?q?=C3?= - =?utf-8?q?=A9?=") == "\xef\xbf\xbd - \xef\xbf\xbd");
}

TEST_CASE("encoded words: malformed or unknown words are left as written") {
  for (std::string s : {"=?utf-8?q?unterminated", "=?utf-8?q?abc?", "=?utf-8?q?abc?x", "=?utf-8?x?abc?=",
                        "=?utf-8??abc?=", "=??q?abc?=", "=?utf-8?q?a=4?=", "=?utf-8?q?a=ZZ?=",
                        "=?utf-8?q?a=?=", "=?utf-8?b?Y!Fm?=", "=?utf-8?b?Y?=", "=?utf-8?b?YW=J?=",
                        "=?koi8-r?b?8NLJ18XU?=", "=?x-unknown?q?abc?=", "=?utf 8?q?abc?=", "=?", "=?=?=?",
                        "?=", "=?utf-8?q?a b?=", "=?utf-8?q?tab\there?=", "=?utf-8?q?caf\xc3\xa9?="}) {
    CAPTURE(s);
    CHECK(decode_header_value(s) == s);
  }
  // A word left as written does not swallow the word next to it, nor does its "?=" start one.
  CHECK(decode_header_value("=?koi8-r?q?x?= =?utf-8?q?y?=") == "=?koi8-r?q?x?= y");
  CHECK(decode_header_value("=?koi8-r?q?x?=?utf-8?q?y?=") == "=?koi8-r?q?x?=?utf-8?q?y?=");
  CHECK(decode_header_value("=?utf-8?q?a?= =?bogus?q?b?= =?utf-8?q?c?=") == "a =?bogus?q?b?= c");
  // An unterminated word before a good one.
  CHECK(decode_header_value("=?utf-8?q?a =?utf-8?q?b?=") == "=?utf-8?q?a b");
}

TEST_CASE("encoded words: output is always valid UTF-8; invalid bytes become U+FFFD") {
  CHECK(decode_header_value("=?utf-8?q?a=FFb?=") == "a\xef\xbf\xbd" "b");
  CHECK(decode_header_value("=?utf-8?q?=C0=AF?=") == "\xef\xbf\xbd\xef\xbf\xbd");        // overlong
  CHECK(decode_header_value("=?utf-8?q?=ED=A0=80?=") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  CHECK(decode_header_value("=?utf-8?q?=F0=9F=98=80?=") == "\xf0\x9f\x98\x80");
  // Raw 8-bit text around words: valid UTF-8 kept (RFC 6532), anything else replaced.
  CHECK(decode_header_value("Gr\xc3\xbc\xc3\x9f =?utf-8?q?x?=") == "Gr\xc3\xbc\xc3\x9f x");
  CHECK(decode_header_value("caf\xe9") == "caf\xef\xbf\xbd");
  // Decoded NUL/CR/LF become spaces: a decoded value never breaks a line.
  CHECK(decode_header_value("=?utf-8?q?a=0D=0Ab=00c?=") == "a  b c");
  CHECK(decode_header_value("=?utf-8?b?YQ0KQmNjOiB4QHk=?=") == "a  Bcc: x@y");
  CHECK(decode_header_value(std::string("a\0b", 3)) == "a b");
  // charset_to_utf8 keeps controls and reports unknown charsets.
  CHECK(charset_to_utf8("UTF-8", "a\r\nb") == std::optional<std::string>("a\r\nb"));
  CHECK(charset_to_utf8("iso-8859-1", "\xe9") == std::optional<std::string>("\xc3\xa9"));
  CHECK(charset_to_utf8("utf-8*en", "\xff") == std::optional<std::string>("\xef\xbf\xbd"));
  CHECK_FALSE(charset_to_utf8("koi8-r", "x").has_value());
  CHECK_FALSE(charset_to_utf8("", "x").has_value());
}

TEST_CASE("encoded words: hostile input stays linear, bounded and valid") {
  auto check_bounds = [](std::string const& in) {
    auto out = decode_header_value(in);
    CHECK(is_valid_utf8(out));
    CHECK(out.size() <= 3 * in.size());
    return out;
  };
  // Many failed candidates: each scan stops at the next '?', so this is linear.
  std::string eq;
  for (int i = 0; i < 200000; ++i) eq += "=?";
  CHECK(check_bounds(eq) == eq);
  std::string partial;
  for (int i = 0; i < 50000; ++i) partial += "=?a?q?xxxx";
  CHECK(check_bounds(partial) == partial);
  std::string long_charset = "=?" + std::string(100000, 'a') + "?q?x?=";
  CHECK(check_bounds(long_charset) == long_charset);
  std::string long_text = "=?utf-8?q?" + std::string(1000000, 'x');
  CHECK(check_bounds(long_text) == long_text);
  // A huge valid word and many valid words.
  std::string big = "=?utf-8?b?";
  for (int i = 0; i < 50000; ++i) big += "w6nDqcOp";  // three U+00E9 each
  big += "?=";
  auto decoded = check_bounds(big);
  CHECK(decoded.size() == 300000);
  CHECK(decoded.substr(0, 4) == "\xc3\xa9\xc3\xa9");
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "=?utf-8?q?a?= ";
  CHECK(check_bounds(many) == std::string(100000, 'a'));
  // Worst expansion: every byte becomes a 3-byte character.
  std::string invalid(100000, '\xff');
  CHECK(check_bounds(invalid).size() == 300000);
  std::string euro = "=?cp1252?q?";
  for (int i = 0; i < 10000; ++i) euro += "=80";
  euro += "?=";
  check_bounds(euro);
  // Every byte value, raw and inside words.
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  check_bounds(all);
  check_bounds("=?utf-8?q?" + all + "?=");
  check_bounds("=?latin1?b?" + all + "?=");
  check_bounds("");
  CHECK(decode_header_value("") == "");
  CHECK(decode_header_value(" \r\n\t ") == "");
}
