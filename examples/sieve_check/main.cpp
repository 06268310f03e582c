// sieve_check: compiles a Sieve script, runs it on one message, prints the actions.
//
//   sieve_check [--from SENDER] [--to RECIPIENT] [--now EPOCH] [--zone +hhmm] [--mailbox NAME]...
//               SCRIPT MESSAGE
//
// One action per line, in a form meant for comparing with other implementations:
//   store MAILBOX [flags=F1 F2] [create]   (keep and the implicit keep are "store INBOX")
//   redirect ADDRESS [copy]
//   reject REASON | ereject REASON | discard   (control characters in REASON shown as '?')
//   vacation TO period=SECONDS
// A compile error prints "compile-error LINE: MESSAGE" and exits 1; a run-time error prints
// "error LINE: MESSAGE" after the (implicit keep) action and exits 2. --mailbox names a mailbox
// that exists (INBOX always does). Vacation uses a fresh in-memory store.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "mailroom/sieve/interpreter.hpp"
#include "mailroom/sieve/script.hpp"
#include "mailroom/sieve/vacation_store.hpp"

namespace sieve = mailroom::sieve;

namespace {

bool read_file(char const* path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// Control characters (a multi-line reason's CRLF) as '?', so that one action is one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

std::string flags(std::vector<std::string> const& f) {
  std::string out;
  for (auto const& x : f) out += (out.empty() ? " flags=" : " ") + x;
  return out;
}

struct printer {
  std::string operator()(sieve::keep_action const& k) const { return "store INBOX" + flags(k.flags); }
  std::string operator()(sieve::fileinto_action const& f) const {
    return "store " + f.mailbox + flags(f.flags) + (f.create ? " create" : "");
  }
  std::string operator()(sieve::redirect_action const& r) const { return "redirect " + r.address + (r.copy ? " copy" : ""); }
  std::string operator()(sieve::reject_action const& r) const { return (r.extended ? "ereject " : "reject ") + one_line(r.reason); }
  std::string operator()(sieve::discard_action const&) const { return "discard"; }
  std::string operator()(sieve::vacation_action const& v) const {
    return "vacation " + v.to + " period=" + std::to_string(v.period);
  }
};

int usage() {
  std::cerr << "usage: sieve_check [--from SENDER] [--to RECIPIENT] [--now EPOCH] [--zone +hhmm] [--mailbox NAME]... "
               "SCRIPT MESSAGE\n";
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  sieve::environment env;
  env.envelope_from = "sender@example.com";
  env.envelope_to = "recipient@example.com";
  env.now = static_cast<std::int64_t>(std::time(nullptr));
  std::vector<std::string> mailboxes{"INBOX"};
  std::vector<char const*> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--from" && has_value) env.envelope_from = argv[++i];
    else if (a == "--to" && has_value) env.envelope_to = argv[++i];
    else if (a == "--now" && has_value) env.now = std::strtoll(argv[++i], nullptr, 10);
    else if (a == "--zone" && has_value) {
      std::string z = argv[++i];
      if (z.size() != 5) return usage();
      int minutes = std::atoi(z.substr(1, 2).c_str()) * 60 + std::atoi(z.substr(3, 2).c_str());
      env.local_zone = z[0] == '-' ? -minutes : minutes;
    } else if (a == "--mailbox" && has_value) mailboxes.push_back(argv[++i]);
    else if (!a.empty() && a[0] == '-') return usage();
    else files.push_back(argv[i]);
  }
  if (files.size() != 2) return usage();
  std::string script_text, message;
  if (!read_file(files[0], script_text) || !read_file(files[1], message)) {
    std::cerr << "sieve_check: cannot read " << (script_text.empty() ? files[0] : files[1]) << "\n";
    return 66;
  }
  auto compiled = sieve::compile(script_text);
  if (!compiled) {
    std::cout << "compile-error " << compiled.error().text() << "\n";
    return 1;
  }
  sieve::memory_vacation_store store;
  env.message = message;
  env.vacation = &store;
  env.mailbox_exists = [&](std::string_view m) {
    for (auto const& x : mailboxes)
      if (x == m) return true;
    return false;
  };
  auto result = sieve::run(**compiled, env);
  for (auto const& a : result.actions) std::cout << std::visit(printer{}, a) << "\n";
  if (result.error) {
    std::cout << "error " << result.error->text() << "\n";
    return 2;
  }
  return 0;
}
