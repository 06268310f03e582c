// mailroomctl dkim keygen|sign|verify (see dkim_usage).
//
// Messages are read from stdin whole (at most 64 MiB). A message without any CRLF is taken as
// having LF line ends (a file on disk): it is hashed as CRLF, and sign writes its header with LF.
#include "dkim.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

#include "mailroom/core/text.hpp"
#include "mailroom/filter/dkim.hpp"

namespace dkim = mailroom::filter::dkim;

namespace mailroomctl {

char const* const dkim_usage =
    "usage: mailroomctl dkim keygen --domain D --selector S --out KEYFILE [--bits N]\n"
    "           writes a new RSA key (default 2048 bits) and prints the TXT record to publish\n"
    "       mailroomctl dkim sign --domain D --selector S --key KEYFILE [--canon H/B] [--headers a:b:c]\n"
    "           [--identity I] [--expire SECONDS] [--no-timestamp] < message > signed\n"
    "           H and B: relaxed (default) or simple\n"
    "       mailroomctl dkim verify [--txt NAME=RECORD]... [--now UNIXTIME] < message\n"
    "           one Authentication-Results result per signature; exit 0 when one passes\n";

namespace {

[[noreturn]] void die(std::string const& why, int code = 1) {
  std::cerr << "mailroomctl dkim: " << why << "\n";
  std::exit(code);
}

struct options {
  std::map<std::string, std::string> single;
  std::vector<std::string> txt;
  bool no_timestamp = false;
};

options parse_options(std::vector<std::string> const& args, std::vector<std::string> const& known) {
  options o;
  for (std::size_t i = 1; i < args.size(); ++i) {
    auto const& a = args[i];
    if (a == "--no-timestamp") {
      o.no_timestamp = true;
      continue;
    }
    if (std::find(known.begin(), known.end(), a) == known.end()) die("unknown option " + a + "\n" + dkim_usage, 2);
    if (i + 1 >= args.size()) die(a + " needs a value", 2);
    if (a == "--txt") o.txt.push_back(args[++i]);
    else o.single[a] = args[++i];
  }
  return o;
}

std::string required(options const& o, std::string const& name) {
  auto it = o.single.find(name);
  if (it == o.single.end() || it->second.empty()) die(name + " is required\n" + dkim_usage, 2);
  return it->second;
}

std::int64_t number(std::string const& s, std::string const& what) {
  auto n = mailroom::text::parse_uint(s, 1ULL << 40);
  if (!n) die(what + " must be a number", 2);
  return static_cast<std::int64_t>(*n);
}

// The message from stdin, with CRLF line ends; `lf` tells whether it came with bare LFs.
std::string read_message(bool& lf) {
  constexpr std::size_t max = 64 * 1024 * 1024;
  std::string in;
  char buf[65536];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    in.append(buf, static_cast<std::size_t>(std::cin.gcount()));
    if (in.size() > max) die("message over 64 MiB");
  }
  lf = in.find("\r\n") == std::string::npos && in.find('\n') != std::string::npos;
  if (!lf) return in;
  std::string out;
  out.reserve(in.size() + in.size() / 32);
  for (char c : in) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

std::string read_file(std::string const& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot read " + path + ": " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// "selector._domainkey.domain" in one case, without a final dot.
std::string key_name(std::string s) {
  while (!s.empty() && s.back() == '.') s.pop_back();
  return mailroom::text::to_lower(s);
}

int keygen(std::vector<std::string> const& args) {
  auto o = parse_options(args, {"--domain", "--selector", "--out", "--bits"});
  auto const domain = required(o, "--domain"), selector = required(o, "--selector"), out = required(o, "--out");
  unsigned bits = 2048;
  if (o.single.count("--bits")) bits = static_cast<unsigned>(number(o.single["--bits"], "--bits"));
  auto key = dkim::private_key::generate_rsa(bits);
  if (!key) die("cannot make a key of " + std::to_string(bits) + " bits: " + key.error().message(), 2);
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot create " + out + ": " + std::strerror(errno) + " (an existing key is never overwritten)");
  auto const pem = (*key)->private_pem();
  bool ok = ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok) die("cannot write " + out);
  // Zone-file form; TXT strings hold at most 255 octets each.
  auto const record = (*key)->key_record();
  std::cout << key_name(selector) << "._domainkey." << key_name(domain) << ". IN TXT";
  for (std::size_t i = 0; i < record.size(); i += 255) std::cout << " \"" << record.substr(i, 255) << "\"";
  std::cout << "\n";
  return 0;
}

int sign(std::vector<std::string> const& args) {
  auto o = parse_options(args, {"--domain", "--selector", "--key", "--canon", "--headers", "--identity", "--expire"});
  dkim::sign_options so;
  so.domain = required(o, "--domain");
  so.selector = required(o, "--selector");
  auto key = dkim::private_key::load_pem(read_file(required(o, "--key")));
  if (!key) die(required(o, "--key") + ": " + key.error().message());
  if (auto c = o.single.find("--canon"); c != o.single.end()) {
    auto canon = [&](std::string_view s) {
      if (s == "relaxed") return dkim::canonicalization::relaxed;
      if (s == "simple") return dkim::canonicalization::simple;
      die("--canon takes relaxed or simple, as H/B", 2);
    };
    auto const slash = c->second.find('/');
    so.header_canon = canon(std::string_view(c->second).substr(0, slash));
    so.body_canon = slash == std::string::npos ? dkim::canonicalization::simple : canon(c->second.substr(slash + 1));
  }
  if (auto h = o.single.find("--headers"); h != o.single.end()) {
    so.headers.clear();
    std::string_view rest = h->second;
    for (auto colon = rest.find(':');; colon = rest.find(':')) {
      so.headers.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (auto i = o.single.find("--identity"); i != o.single.end()) so.identity = i->second;
  auto const now = static_cast<std::int64_t>(std::time(nullptr));
  if (!o.no_timestamp) so.timestamp = now;
  if (auto x = o.single.find("--expire"); x != o.single.end()) so.expiration = now + number(x->second, "--expire");

  bool lf = false;
  auto const msg = read_message(lf);
  dkim::signer s(so, *key);
  s.feed(msg);
  auto header = s.finish();
  if (!header) die("cannot sign: " + header.error().message());
  std::string out = *header + msg;
  if (lf) {  // back to the LF form the message came in
    std::string back;
    back.reserve(out.size());
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!(out[i] == '\r' && i + 1 < out.size() && out[i + 1] == '\n')) back += out[i];
    out = std::move(back);
  }
  std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
  return std::cout.flush() ? 0 : 1;
}

int verify(std::vector<std::string> const& args) {
  auto o = parse_options(args, {"--txt", "--now"});
  std::map<std::string, std::vector<std::string>> keys;
  for (auto const& t : o.txt) {
    auto const eq = t.find('=');
    if (eq == std::string::npos || eq == 0) die("--txt takes NAME=RECORD", 2);
    keys[key_name(t.substr(0, eq))].push_back(t.substr(eq + 1));
  }
  std::optional<std::int64_t> now;
  if (auto n = o.single.find("--now"); n != o.single.end()) now = number(n->second, "--now");

  bool lf = false;
  auto const msg = read_message(lf);
  dkim::verifier v({}, now);
  v.feed(msg);
  v.finish();
  if (v.error()) {
    dkim::verification bad;
    bad.status = dkim::status::permerror;
    bad.reason = v.error().message();
    std::cout << dkim::format_result(bad) << "\n";
    return 1;
  }
  if (v.signatures().empty()) {
    std::cout << "dkim=none\n";
    return 1;
  }
  bool pass = false;
  for (std::size_t i = 0; i < v.signatures().size(); ++i) {
    dkim::key_answer answer{dkim::key_answer::outcome::not_found, {}};
    if (auto k = keys.find(v.signatures()[i].key_name); k != keys.end()) answer = {dkim::key_answer::outcome::found, k->second};
    auto r = v.verify(i, answer);
    pass = pass || r.status == dkim::status::pass;
    std::cout << dkim::format_result(r) << "\n";
  }
  return pass ? 0 : 1;
}

}  // namespace

int dkim_cmd(std::vector<std::string> const& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << dkim_usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "keygen") return keygen(args);
  if (args[0] == "sign") return sign(args);
  if (args[0] == "verify") return verify(args);
  std::cerr << dkim_usage;
  return 2;
}

}  // namespace mailroomctl
