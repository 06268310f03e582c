// The Sieve compiler: grammar, require, argument checks, limits, and the messages it gives.
#include <doctest/doctest.h>

#include "sieve/helpers.hpp"

using namespace mailroom::sieve;
using namespace mailroom::sieve::testing;

TEST_CASE("sieve compile: grammar of RFC 5228 section 8") {
  auto s = compile(
      "# a comment\r\n"
      "require [\"fileinto\", \"reject\"]; /* a\r\n bracketed comment */\r\n"
      "if anyof (not exists [\"From\",\"Date\"], size :over 1M) { discard; }\r\n"
      "elsif header :comparator \"i;octet\" :contains \"x\" \"y\" { fileinto \"a\"; }\r\n"
      "else { keep; }\r\n"
      "reject text: # note\r\n"
      "line one\r\n"
      "..dot\r\n"
      ".\r\n"
      ";\r\n");
  REQUIRE_MESSAGE(s, (s ? "" : s.error().text()));
  auto const& cmds = (*s)->commands;
  REQUIRE(cmds.size() == 4);
  CHECK(cmds[0].name == "if");
  CHECK(cmds[0].tests[0].name == "anyof");
  CHECK(cmds[0].tests[0].tests[1].positional[0].number == 1024 * 1024);
  CHECK(cmds[1].name == "elsif");
  CHECK(cmds[1].tests[0].tag(":comparator")->strings[0] == "i;octet");
  CHECK(cmds[3].positional[0].strings[0] == "line one\r\n.dot\r\n");
  CHECK((*s)->uses(extension::fileinto));
  CHECK_FALSE((*s)->uses(extension::body));
}

TEST_CASE("sieve compile: quoted strings, escapes, numbers, identifiers are case-insensitive") {
  auto s = compile("IF Header :IS \"Subject\" \"a\\\"b\\\\c\\q\" { Keep; } if size :under 2k { stop; }");
  REQUIRE(s);
  auto const& t = (*s)->commands[0].tests[0];
  CHECK(t.name == "header");
  CHECK(t.has(":is"));
  CHECK(t.positional[1].strings[0] == "a\"b\\cq");
  CHECK((*s)->commands[1].tests[0].positional[0].number == 2048);
}

TEST_CASE("sieve compile: errors carry line and a clear message") {
  CHECK(compile_error("require \"fileinto\";\nif true {\n  keep;\n  filein \"x\";\n}\n") == "line 4: unknown command \"filein\"");
  CHECK(compile_error("fileinto \"x\";") == "line 1: command \"fileinto\" needs require \"fileinto\"");
  CHECK(compile_error("require \"fileinto\";\nfileinto :copy \"x\";") == "line 2: tag :copy needs require \"copy\"");
  CHECK(compile_error("require \"nonesuch\";") == "line 1: unsupported extension \"nonesuch\"");
  CHECK(compile_error("keep;\nrequire \"fileinto\";") == "line 2: \"require\" must come before other commands");
  CHECK(compile_error("if header :is \"a\" { keep; }") == "line 1: wrong arguments for test \"header\"");
  CHECK(compile_error("if header :is :contains \"a\" \"b\" { keep; }") ==
        "line 1: tag :contains conflicts with an earlier tag");
  CHECK(compile_error("if header :over \"a\" \"b\" { keep; }") == "line 1: unknown tag :over for test \"header\"");
  CHECK(compile_error("keep") == "line 1: missing ';' after \"keep\" (found end of script)");
  CHECK(compile_error("keep\n\ndiscard;") == "line 1: missing ';' after \"keep\" (found \"discard\")");
  CHECK(compile_error("if true {\n keep;\n") ==
        "line 3: expected '}' to close the block of \"if\" from line 1 but found end of script");
  CHECK(compile_error("else { keep; }") == "line 1: \"else\" without \"if\"");
  CHECK(compile_error("if keep { }") == "line 1: \"keep\" is a command, not a test");
  CHECK(compile_error("\n\n  keep \"x;") == "line 3: unterminated string");
  CHECK(compile_error("if header :comparator \"i;foo\" \"a\" \"b\" {}") == "line 1: unknown comparator \"i;foo\"");
  CHECK(compile_error("require \"comparator-i;ascii-numeric\";\nif header :comparator \"i;ascii-numeric\" :contains \"a\" \"1\" {}") ==
        "line 2: comparator \"i;ascii-numeric\" cannot do substring matches");
  CHECK(compile_error("if header :comparator \"i;ascii-numeric\" :is \"a\" \"1\" {}") ==
        "line 1: comparator \"i;ascii-numeric\" needs require \"comparator-i;ascii-numeric\"");
  CHECK(compile_error("require \"relational\";\nif header :value \"xx\" \"a\" \"1\" {}") ==
        "line 2: unknown relational operator \"xx\"");
  CHECK(compile_error("redirect \"not an address\";") == "line 1: bad redirect address \"not an address\"");
  CHECK(compile_error("require \"envelope\"; if envelope \"bcc\" \"x\" {}") == "line 1: unknown envelope part \"bcc\"");
  CHECK(compile_error("require \"date\"; if currentdate \"era\" \"x\" {}") == "line 1: unknown date part \"era\"");
  CHECK(compile_error("require \"date\"; if currentdate :zone \"CET\" \"year\" \"x\" {}") == "line 1: bad time zone \"CET\"");
  CHECK(compile_error("if size 5 {}") == "line 1: \"size\" needs :over or :under");
  CHECK(compile_error("if address :is [\"to\", \"Subject\"] \"x\" {}") ==
        "line 1: header \"Subject\" holds no addresses (address test)");
  CHECK(compile_error("require \"variables\"; set \"1a\" \"x\";") == "line 1: bad variable name \"1a\"");
  CHECK(compile_error("require \"variables\"; set :lower :upper \"a\" \"x\";") ==
        "line 1: tag :upper conflicts with an earlier tag");
  CHECK(compile_error("require \"index\"; if header :last \"a\" \"b\" {}") == "line 1: :last needs :index");
  CHECK(compile_error("keep :flags \"x\";") == "line 1: tag :flags needs require \"imap4flags\"");
  CHECK(compile_error("if true { keep; } x") == "line 1: unknown command \"x\"");
  auto e = compile("stop;\n  @");
  REQUIRE_FALSE(e);
  CHECK(e.error().line == 2);
  CHECK(e.error().column == 3);
  CHECK(e.error().code == errc::syntax);
}

TEST_CASE("sieve compile: encoded-character (RFC 5228 2.4.2.4)") {
  auto s = compile("require \"encoded-character\"; if header :is \"Subject\" \"${hex:48 69}${unicode:263a} ${hex:zz}\" {}");
  REQUIRE(s);
  CHECK((*s)->commands[0].tests[0].positional[1].strings[0] == "Hi\xe2\x98\xba ${hex:zz}");
  auto plain = compile("if header :is \"Subject\" \"${hex:48}\" {}");
  REQUIRE(plain);
  CHECK((*plain)->commands[0].tests[0].positional[1].strings[0] == "${hex:48}");
  CHECK(compile_error("require \"encoded-character\"; keep :flags \"${unicode:d800}\";").find("invalid unicode") !=
        std::string::npos);
}

TEST_CASE("sieve compile: limits give an error, not a crash") {
  limits lim;
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "if true {";
  deep += "keep;";
  for (int i = 0; i < 200; ++i) deep += "}";
  auto e = compile(deep, lim);
  REQUIRE_FALSE(e);
  CHECK(e.error().code == errc::limit_exceeded);
  CHECK(e.error().message == "nesting deeper than 50");

  std::string nots = "if ";
  for (int i = 0; i < 100000; ++i) nots += "not ";
  nots += "true {}";
  CHECK(compile_error(nots).find("nesting deeper than") != std::string::npos);

  std::string paren = "if ";
  for (int i = 0; i < 100000; ++i) paren += "anyof(";
  CHECK(compile_error(paren).find("nesting deeper than") != std::string::npos);

  std::string huge = "reject \"" + std::string(100000, 'x') + "\";";
  CHECK(compile_error("require \"reject\";" + huge) == "line 1: string longer than 65536 bytes");

  std::string list = "if header :is \"a\" [";
  for (int i = 0; i < 10000; ++i) list += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  list += "] {}";
  CHECK(compile_error(list) == "line 1: string list longer than 1024 items");

  std::string many;
  for (int i = 0; i < 20000; ++i) many += "keep;";
  CHECK(compile_error(many) == "line 1: more than 10000 commands and tests");

  limits small;
  small.max_script_bytes = 10;
  CHECK(compile_error("keep; keep; keep;", small) == "script larger than 10 bytes");
  CHECK(compile_error("if size :over 99999999999999999999999 {}") == "line 1: number too large");
  CHECK(compile_error("/* never closed") == "line 1: unterminated comment");
  CHECK(compile_error("reject text:\r\nno end") == "line 1: unterminated multi-line string");
}
