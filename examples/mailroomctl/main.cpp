// mailroomctl: look after a mailroomd installation (same config file, same directories).
//
//   mailroomctl --config FILE queue list [incoming|active|deferred|hold|corrupt]...
//   mailroomctl --config FILE queue flush                    deferred mail is due now
//   mailroomctl --config FILE queue delete|hold|release ID...
//   mailroomctl --config FILE user list
//   mailroomctl --config FILE user add|passwd [--scheme S] NAME   password from stdin (one line)
//       S: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT (or BCRYPT), YESCRYPT, ARGON2ID, SCRAM-SHA-256
//   mailroomctl --config FILE user del NAME
//
// Every change is atomic (rename) and durable (fsync) and safe while mailroomd runs; a message
// in active/ is being delivered and is left alone.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <cstring>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "../mailroomd/config.hpp"
#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/queue/spool.hpp"

using namespace mailroom;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(std::string const& why, int code = 1) {
  std::cerr << "mailroomctl: " << why << "\n";
  std::exit(code);
}

template <class T>
T run_task(task<T> t) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(t), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out.emplace(std::move(v));
  });
  io.run();
  return std::move(*out);
}

std::optional<queue::state> state_named(std::string const& s) {
  for (auto st : {queue::state::incoming, queue::state::active, queue::state::deferred, queue::state::hold,
                  queue::state::corrupt})
    if (s == queue::to_string(st)) return st;
  return std::nullopt;
}

std::optional<queue::state> find(queue::spool& sp, std::string const& id) {
  for (auto st : {queue::state::incoming, queue::state::deferred, queue::state::hold, queue::state::corrupt,
                  queue::state::active})
    if (fs::exists(sp.path(st, id))) return st;
  return std::nullopt;
}

int queue_cmd(mailroomd::config const& c, std::vector<std::string> const& args) {
  blocking_pool pool(1);
  auto sp = queue::spool::open(c.data_dir + "/queue", pool, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  if (!sp) die("queue " + c.data_dir + "/queue: " + sp.error().message());
  auto& q = **sp;
  std::string verb = args.empty() ? "list" : args[0];
  if (verb == "list") {
    std::vector<queue::state> states;
    for (std::size_t i = 1; i < args.size(); ++i) {
      auto st = state_named(args[i]);
      if (!st) die("unknown queue state " + args[i], 2);
      states.push_back(*st);
    }
    if (states.empty())
      states = {queue::state::incoming, queue::state::active, queue::state::deferred, queue::state::hold,
                queue::state::corrupt};
    std::size_t total = 0;
    for (auto st : states) {
      auto ids = q.list(st).value();
      for (auto const& id : ids) {
        ++total;
        if (st == queue::state::corrupt) {
          std::cout << id << "  corrupt\n";
          continue;
        }
        auto m = q.read(st, id);  // a damaged file is moved to corrupt/ here
        if (!m) {
          std::cout << id << "  " << queue::to_string(st) << "  (unreadable: moved to corrupt/)\n";
          continue;
        }
        std::time_t t = m->env.arrival;
        char when[32];
        std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
        std::cout << id << "  " << queue::to_string(st) << "  " << when << "  " << m->body_size << " bytes  attempts "
                  << m->env.attempts << "  from <" << m->env.sender.to_string() << ">\n";
        for (auto const& r : m->env.recipients) std::cout << "    to <" << r.addr.to_string() << ">\n";
      }
    }
    std::cout << total << " message" << (total == 1 ? "" : "s") << "\n";
    return 0;
  }
  if (verb == "flush") {
    auto ids = q.list(queue::state::deferred).value();
    for (auto const& id : ids) (void)run_task(q.defer_until(id, std::chrono::system_clock::now()));
    std::cout << ids.size() << " deferred message" << (ids.size() == 1 ? "" : "s") << " due now\n";
    return 0;
  }
  if (verb != "delete" && verb != "hold" && verb != "release") die("unknown queue command " + verb, 2);
  if (args.size() < 2) die("queue " + verb + " needs queue ids", 2);
  int failures = 0;
  for (std::size_t i = 1; i < args.size(); ++i) {
    auto const& id = args[i];
    if (id.find('/') != std::string::npos || id.find("..") != std::string::npos) die("bad queue id " + id, 2);
    auto st = find(q, id);
    std::string problem;
    if (!st) {
      problem = "no such message";
    } else if (*st == queue::state::active) {
      problem = "being delivered right now; try again";
    } else if (verb == "delete") {
      if (::unlink(q.path(*st, id).c_str()) != 0) problem = std::strerror(errno);
      else (void)fsync_directory(q.root() + "/" + std::string(queue::to_string(*st)));
    } else {
      auto to = verb == "hold" ? queue::state::hold : queue::state::incoming;
      if (verb == "release" && *st != queue::state::hold) problem = "not on hold";
      else if (verb == "hold" && *st == queue::state::hold) problem = "already on hold";
      else if (auto r = run_task(q.move(id, *st, to)); !r) problem = r.error().message();
    }
    if (!problem.empty()) {
      std::cerr << "mailroomctl: " << id << ": " << problem << "\n";
      ++failures;
    } else {
      std::cout << id << ": " << (verb == "delete" ? "deleted" : verb == "hold" ? "on hold" : "released") << "\n";
    }
  }
  return failures ? 1 : 0;
}

// The passwd file, rewritten whole: tmp file, fsync, rename, fsync of the directory.
void rewrite_passwd(std::string const& path, std::vector<std::string> const& lines) {
  auto tmp = path + ".mailroomctl.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (auto const& l : lines) out << l << "\n";
    out.flush();
    if (!out) die("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), 0600);
  if (FILE* f = std::fopen(tmp.c_str(), "r")) {
    ::fsync(fileno(f));
    std::fclose(f);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) die("cannot replace " + path + ": " + std::strerror(errno));
  (void)fsync_directory(fs::path(path).parent_path().string());
}

constexpr char const* usage_text =
    "usage: mailroomctl --config FILE queue list [incoming|active|deferred|hold|corrupt]...\n"
    "       mailroomctl --config FILE queue flush|delete ID...|hold ID...|release ID...\n"
    "       mailroomctl --config FILE user list\n"
    "       mailroomctl --config FILE user add|passwd [--scheme SCHEME] NAME   (password on stdin)\n"
    "       mailroomctl --config FILE user del NAME\n"
    "SCHEME: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT (or BCRYPT), YESCRYPT, ARGON2ID, SCRAM-SHA-256\n";

// The --scheme value as the passwd file names it (Dovecot's names, any case); exits 2 if unknown.
std::string scheme_named(std::string const& in) {
  std::string s = in;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  if (s == "BCRYPT") s = "BLF-CRYPT";
  for (auto const* known : {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "ARGON2ID", "SCRAM-SHA-256"})
    if (s == known) return s;
  die("unknown password scheme \"" + in +
          "\" (use SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, BCRYPT, YESCRYPT, ARGON2ID or SCRAM-SHA-256)",
      2);
}

std::string read_password() {
  std::string pw;
  if (!std::getline(std::cin, pw) || pw.empty()) die("give the password on standard input", 2);
  if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  return pw;
}

int user_cmd(mailroomd::config const& c, std::vector<std::string> args) {
  std::optional<std::string> scheme;  // --scheme NAME or --scheme=NAME, anywhere after the verb
  for (auto it = args.begin(); it != args.end();) {
    if (*it == "--scheme" || it->rfind("--scheme=", 0) == 0) {
      std::string value;
      if (*it == "--scheme") {
        if (std::next(it) == args.end()) die("--scheme needs a name", 2);
        value = *std::next(it);
        it = args.erase(it, std::next(it, 2));
      } else {
        value = it->substr(9);
        it = args.erase(it);
      }
      scheme = scheme_named(value);
    } else {
      ++it;
    }
  }
  if (c.passwd_file.empty()) die("the configuration has no [auth] passwd_file");
  std::vector<std::string> lines;
  {
    std::ifstream in(c.passwd_file);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  auto name_of = [](std::string const& l) { return l.substr(0, l.find(':')); };
  std::string verb = args.empty() ? "list" : args[0];
  if (scheme && verb != "add" && verb != "passwd") die("--scheme is only for user add and user passwd", 2);
  if (verb == "list") {
    for (auto const& l : lines)
      if (!l.empty() && l[0] != '#') std::cout << name_of(l) << "\n";
    return 0;
  }
  if (args.size() != 2) die("user " + verb + " needs a user name", 2);
  auto const& name = args[1];
  if (name.empty() || name.find_first_of(": \t\r\n") != std::string::npos) die("bad user name " + name, 2);
  auto it = std::find_if(lines.begin(), lines.end(), [&](auto const& l) { return name_of(l) == name; });
  if (verb == "add" || verb == "passwd") {
    if (verb == "add" && it != lines.end()) die("user " + name + " exists", 1);
    if (verb == "passwd" && it == lines.end()) die("no user " + name, 1);
    auto const sch = scheme.value_or("SHA512-CRYPT");
    if (!auth::scheme_supported(sch)) die(sch + " is not available: mailroom was built without libargon2");
    auto hash = auth::hash_password(read_password(), sch);
    if (!hash) die("cannot hash the password with " + sch + ": " + hash.error().message());
    auto line = name + ":" + *hash;
    if (it == lines.end()) lines.push_back(line);
    else *it = line;
    rewrite_passwd(c.passwd_file, lines);
    if (verb == "add") {  // the mailbox: <data_dir>/mail/<local part>
      auto local = name.substr(0, name.find('@'));
      std::transform(local.begin(), local.end(), local.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (auto ec = mailroom::create_directories(c.data_dir + "/mail/" + local); ec)
        die("cannot create the mailbox of " + name + ": " + ec.message());
    }
    std::cout << (verb == "add" ? "added " : "password changed for ") << name << "\n";
    return 0;
  }
  if (verb == "del") {
    if (it == lines.end()) die("no user " + name, 1);
    lines.erase(it);
    rewrite_passwd(c.passwd_file, lines);
    std::cout << "deleted " << name << " (the mailbox is kept)\n";
    return 0;
  }
  die("unknown user command " + verb, 2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (std::find_if(args.begin(), args.end(), [](auto const& a) { return a == "--help" || a == "-h"; }) != args.end()) {
    std::cout << usage_text;
    return 0;
  }
  if (args.size() < 3 || args[0] != "--config" || (args[2] != "queue" && args[2] != "user")) {
    std::cerr << usage_text;
    return 2;
  }
  auto c = mailroomd::load(args[1]);
  if (!c) die(c.error());
  std::vector<std::string> rest(args.begin() + 3, args.end());
  return args[2] == "queue" ? queue_cmd(*c, rest) : user_cmd(*c, rest);
} catch (std::exception const& e) {
  std::cerr << "mailroomctl: " << e.what() << "\n";
  return 1;
}
