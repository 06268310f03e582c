// Shared by the Sieve tests: compile + run a script on a message, actions as describe() lines.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "mailroom/sieve/interpreter.hpp"
#include "mailroom/sieve/script.hpp"
#include "mailroom/sieve/vacation_store.hpp"

template <>
struct doctest::StringMaker<std::vector<std::string>> {
  static String convert(std::vector<std::string> const& v) {
    std::string out = "{";
    for (auto const& s : v) out += (out.size() > 1 ? ", " : "") + ("[" + s + "]");
    return (out + "}").c_str();
  }
};

namespace mailroom::sieve::testing {

inline std::string const default_message =
    "Return-Path: <coyote@desert.example.org>\r\n"
    "Date: Fri, 12 Aug 2005 21:13:00 -0700\r\n"
    "From: Wile E. Coyote <coyote@desert.example.org>\r\n"
    "To: Road Runner <roadrunner+birds@acme.example.com>\r\n"
    "Cc: friends@example.net, boss@example.com\r\n"
    "Subject: =?utf-8?q?I_have_a_present_for_you_=E2=98=BA?=\r\n"
    "Message-ID: <1234@desert.example.org>\r\n"
    "X-Caffeine: C8H10N4O2\r\n"
    "\r\n"
    "Look, I'm sorry about the whole anvil thing, and I really\r\n"
    "didn't mean to try and drop it on you from the top of the\r\n"
    "cliff.  I want to try to make it up to you.\r\n";

inline environment default_env(std::string const& message) {
  environment env;
  env.message = message;
  env.envelope_from = "coyote@desert.example.org";
  env.envelope_to = "roadrunner+birds@acme.example.com";
  env.now = 1123906380;  // 2005-08-13 04:13:00 UTC
  env.mailbox_exists = [](std::string_view m) { return m == "INBOX" || m == "Junk"; };
  return env;
}

inline std::vector<std::string> lines(run_result const& r) {
  std::vector<std::string> out;
  for (auto const& a : r.actions) out.push_back(describe(a));
  if (r.error) out.push_back("error: " + r.error->text());
  return out;
}

/// The actions of `text` run on `env` (the script must compile).
inline std::vector<std::string> run_on(std::string const& text, environment const& env, limits const& lim = {}) {
  auto s = compile(text, lim);
  if (!s) FAIL("compile failed: " << s.error().text());
  return lines(run(**s, env, lim));
}

inline std::vector<std::string> run_on(std::string const& text, std::string const& message = default_message) {
  return run_on(text, default_env(message));
}

/// The diagnostic text of a script that must not compile.
inline std::string compile_error(std::string const& text, limits const& lim = {}) {
  auto s = compile(text, lim);
  if (s) FAIL("compiled, but should not have: " << text);
  return s.error().text();
}

using v = std::vector<std::string>;

}  // namespace mailroom::sieve::testing
