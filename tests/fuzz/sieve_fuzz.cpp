// libFuzzer: any script compiles or fails with a diagnostic carrying a message; a compiled script
// runs on a fixed message (and on the input itself as a message) within its limits, and a failed
// run falls back to exactly the implicit keep.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/sieve/interpreter.hpp"
#include "mailroom/sieve/script.hpp"
#include "mailroom/sieve/vacation_store.hpp"

namespace {

std::string const fixed_message =
    "Return-Path: <a@example.org>\r\n"
    "Date: Fri, 12 Aug 2005 21:13:00 -0700\r\n"
    "From: A <a@example.org>\r\n"
    "To: b+detail@example.net, c@example.com\r\n"
    "Subject: =?utf-8?q?caf=C3=A9?= test\r\n"
    "List-Id: <l.example.org>\r\n"
    "Content-Type: multipart/mixed; boundary=x\r\n"
    "\r\n"
    "--x\r\nContent-Type: text/plain\r\n\r\nhello anvil\r\n"
    "--x\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--x--\r\n";

void run_on(mailroom::sieve::script const& s, std::string_view message, mailroom::sieve::limits const& lim) {
  mailroom::sieve::memory_vacation_store store(16);
  mailroom::sieve::environment env;
  env.message = message;
  env.envelope_from = "a@example.org";
  env.envelope_to = "b+detail@example.net";
  env.now = 1123906380;
  env.vacation = &store;
  env.mailbox_exists = [](std::string_view m) { return m == "INBOX"; };
  auto r = mailroom::sieve::run(s, env, lim);
  if (r.error && (r.actions.size() != 1 || r.error->message.empty())) std::abort();
  // Every action but discard and vacation counts toward max_actions; discard is listed once.
  if (r.actions.size() > lim.max_actions + 2) std::abort();
  for (auto const& a : r.actions) (void)mailroom::sieve::describe(a);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  mailroom::sieve::limits lim;
  lim.max_match_work = 200000;
  auto s = mailroom::sieve::compile(text, lim);
  if (!s) {
    if (s.error().message.empty() || !s.error().code) std::abort();
    return 0;
  }
  run_on(**s, fixed_message, lim);
  run_on(**s, text, lim);
  return 0;
}
