// Scripts and messages meant to hurt: bounded time and memory, and a clear error.
#include <doctest/doctest.h>

#include <chrono>

#include "sieve/detail/util.hpp"
#include "sieve/helpers.hpp"

using namespace mailroom::sieve;
using namespace mailroom::sieve::testing;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("sieve wildcard: semantics and captures") {
  detail::budget b{1000000};
  std::vector<std::string> caps;
  using detail::comparator;
  CHECK(detail::wildcard(comparator::casemap, "Hello World", "h*o w?rld", b, &caps));
  CHECK(caps == v{"Hello World", "ell", "o"});
  CHECK(detail::wildcard(comparator::octet, "a*b", "a\\*b", b, nullptr));
  CHECK_FALSE(detail::wildcard(comparator::octet, "axb", "a\\*b", b, nullptr));
  CHECK_FALSE(detail::wildcard(comparator::octet, "ABC", "abc", b, nullptr));
  CHECK(detail::wildcard(comparator::octet, "", "*", b, nullptr));
  CHECK_FALSE(detail::wildcard(comparator::octet, "", "?", b, nullptr));
  CHECK(detail::wildcard(comparator::octet, "\xe2\x98\xba", "?", b, nullptr));  // one UTF-8 character
  CHECK(detail::wildcard(comparator::octet, "abcabc", "*c", b, &caps));
  CHECK(caps == v{"abcabc", "abcab"});
  CHECK(detail::wildcard(comparator::octet, "x.y.z", "*.*", b, &caps));
  CHECK(caps == v{"x.y.z", "x", "y.z"});
  CHECK_FALSE(detail::wildcard(comparator::octet, "abcd", "a*c", b, nullptr));
}

TEST_CASE("sieve comparators: i;ascii-numeric orders numbers, non-numbers last") {
  using detail::comparator;
  CHECK(detail::order(comparator::numeric, "10", "9") > 0);
  CHECK(detail::order(comparator::numeric, "007", "7") == 0);
  CHECK(detail::order(comparator::numeric, "abc", "99999999999999999999999999") > 0);
  CHECK(detail::order(comparator::numeric, "abc", "xyz") == 0);
  CHECK(detail::equals(comparator::numeric, "12abc", "12"));
  CHECK(detail::equals(comparator::casemap, "ABC", "abc"));
  CHECK_FALSE(detail::equals(comparator::octet, "ABC", "abc"));
}

TEST_CASE("sieve hostile: pathological :matches is bounded") {
  std::string const msg = "Subject: " + std::string(200000, 'a') + "\r\n\r\nbody\r\n";
  // Only the last '*' ever backtracks: this classic exponential case is linear here.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run_on("if header :matches \"subject\" \"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\" { discard; }", msg) ==
        v{"implicit keep"});
  CHECK(seconds_since(t0) < 2);
  // A long last segment costs |value| x |segment|: the budget stops it with an error.
  std::string const pattern = "*" + std::string(1000, 'a') + "b";
  t0 = std::chrono::steady_clock::now();
  auto r = run_on("if header :matches \"subject\" \"" + pattern + "\" { discard; }", msg);
  CHECK(seconds_since(t0) < 5);
  CHECK(r == v{"implicit keep", "error: line 1: too much matching work"});

  // Within the budget the same shape completes and answers correctly.
  std::string const small = "Subject: " + std::string(2000, 'a') + "b\r\n\r\n";
  CHECK(run_on("if header :matches \"subject\" \"*a*a*a*a*a*a*a*a*b\" { discard; }", small) == v{"discard"});
  CHECK(run_on("if header :matches \"subject\" \"*a*a*a*a*a*a*a*a*c\" { discard; }", small) == v{"implicit keep"});

  limits tight;
  tight.max_match_work = 1000;
  environment env = default_env(msg);
  CHECK(run_on("if header :contains \"subject\" \"aab\" { discard; }", env, tight).back() ==
        "error: line 1: too much matching work");
}

TEST_CASE("sieve hostile: too many redirects, actions, variables") {
  std::string redirects;
  for (int i = 0; i < 11; ++i) redirects += "redirect \"u" + std::to_string(i) + "@example.org\";\n";
  auto r = run_on(redirects);
  CHECK(r == v{"implicit keep", "error: line 11: more than 10 redirects"});

  std::string files = "require \"fileinto\";\n";
  for (int i = 0; i < 40; ++i) files += "fileinto \"f" + std::to_string(i) + "\";\n";
  CHECK(run_on(files).back() == "error: line 34: more than 32 actions");

  std::string vars = "require \"variables\";\n";
  for (int i = 0; i < 300; ++i) vars += "set \"v" + std::to_string(i) + "\" \"x\";\n";
  CHECK(run_on(vars).back() == "error: line 258: more than 256 variables");

  // Doubling a variable 30 times stays at the size limit.
  std::string grow = "require [\"variables\", \"fileinto\"]; set \"a\" \"xy\";";
  for (int i = 0; i < 30; ++i) grow += "set \"a\" \"${a}${a}\";";
  grow += "set :length \"n\" \"${a}\"; fileinto \"${n}\";";
  CHECK(run_on(grow) == v{"fileinto \"4096\""});

  // Variables cannot turn a small list into a huge one.
  std::string amplify = "require \"variables\"; set \"a\" \"" + std::string(4000, 'x') + "\";\nif header :is \"subject\" [";
  std::string const item = "\"${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}\"";
  for (int i = 0; i < 1000; ++i) amplify += (i ? "," : "") + item;
  amplify += "] { discard; }";
  CHECK(run_on(amplify).back() == "error: line 2: string list longer than 1048576 bytes after variable expansion");

  // A 10k-element list: refused by the default limit, bounded when allowed.
  std::string list = "if header :contains \"subject\" [";
  for (int i = 0; i < 10000; ++i) list += (i ? ",\"" : "\"") + std::string(50, 'q') + std::to_string(i) + "\"";
  list += "] { discard; }";
  CHECK(compile_error(list) == "line 1: string list longer than 1024 items");
  limits wide;
  wide.max_list_items = 20000;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run_on(list, default_env(default_message), wide) == v{"implicit keep"});
  CHECK(seconds_since(t0) < 5);
}

TEST_CASE("sieve hostile: redirect address built from variables is checked at run time") {
  CHECK(run_on("require \"variables\"; set \"a\" \"bad address\"; redirect \"${a}\";") ==
        v{"implicit keep", "error: line 1: redirect: invalid address \"bad address\""});
  CHECK(run_on("require \"variables\"; set \"a\" \"ok@example.org\"; redirect \"${a}\";") == v{"redirect \"ok@example.org\""});
}

TEST_CASE("sieve hostile: malformed messages") {
  CHECK(run_on("if header :contains \"subject\" \"x\" { discard; }", "") == v{"implicit keep"});
  CHECK(run_on("if address :all :is \"from\" \"x\" { discard; }", "From: <<<>>>@@@,,,\r\n\r\n") == v{"implicit keep"});
  CHECK(run_on("require \"body\"; if body :contains \"x\" { discard; }", "no header at all") == v{"implicit keep"});
  std::string nested = "Content-Type: multipart/mixed; boundary=a\r\n\r\n";
  for (int i = 0; i < 300; ++i) nested += "--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n";
  CHECK(run_on("require \"body\"; if body :contains \"x\" { discard; }", nested) == v{"implicit keep"});
}
