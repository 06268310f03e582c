// mailroomctl: look after a mailroomd installation (same config file, same directories).
//
//   mailroomctl --config FILE queue list [incoming|active|deferred|hold|corrupt]...
//       per message: id, state, arrival, size, attempts, next attempt, sender; per recipient its
//       state ("new", or "deferred" with the time and reply or error of its last attempt)
//   mailroomctl --config FILE queue show ID                  envelope, delivery state, header
//   mailroomctl --config FILE queue flush [ID...]            deferred mail is due now
//   mailroomctl --config FILE queue delete|hold|release ID...
//   mailroomctl --config FILE user list
//   mailroomctl --config FILE user add|passwd [--scheme S] NAME   password from stdin (one line)
//       S: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT (or BCRYPT), YESCRYPT, ARGON2ID, SCRAM-SHA-256
//   mailroomctl --config FILE user del NAME
//   mailroomctl --config FILE fetch list                     [[fetch]] accounts and what each has fetched
//   mailroomctl --config FILE fetch run [ID...]              one round now, into the queue
//   mailroomctl --config FILE fetch add ID --host H --user U --to ADDR [--protocol imap|pop3]
//       [--port P] [--tls implicit|verify|required|opportunistic|none] [--folder F] [--delete]
//       [--interval SECONDS]        password from stdin; appended to FILE (mailroomd: restart)
//   mailroomctl dkim keygen|sign|verify ...                  no configuration; see dkim.cpp
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
#include <set>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "../mailroomd/config.hpp"
#include "dkim.hpp"
#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/mra/fetcher.hpp"
#include "mailroom/net/dns/resolver.hpp"
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

// For the terminal: control characters (escape sequences in a hostile header or reply) as '?'.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f ? '?' : c;
  return out;
}

std::string utc(std::int64_t t) {
  if (t <= 0) return "-";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// When a deferred message is due: its file's mtime (see queue::spool::defer_until).
std::int64_t next_attempt(queue::spool const& q, queue::state st, std::string const& id) {
  struct stat sb {};
  if (st != queue::state::deferred || ::stat(q.path(st, id).c_str(), &sb) != 0) return 0;
  return static_cast<std::int64_t>(sb.st_mtim.tv_sec);
}

// A recipient's state: "new" (not tried yet), or "deferred" with its last outcome.
std::string recipient_state(queue::recipient const& r) {
  if (r.last_attempt == 0 && !r.last_reply && r.last_error.empty()) return "new";
  return "deferred, last try " + utc(r.last_attempt) + ": " + printable(r.last_outcome());
}

std::string notify_text(std::uint8_t n) {
  if (n == 0) return "default";
  if (n & smtp::notify_never) return "NEVER";
  std::string out;
  for (auto [bit, name] : {std::pair{smtp::notify_success, "SUCCESS"}, {smtp::notify_failure, "FAILURE"},
                           {smtp::notify_delay, "DELAY"}})
    if (n & bit) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

int queue_cmd(mailroomd::config const& c, std::vector<std::string> const& args) {
  blocking_pool pool(1);
  auto sp = queue::spool::open(c.data_dir + "/queue", pool, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  if (!sp) die("queue " + c.data_dir + "/queue: " + sp.error().message());
  auto& q = **sp;
  std::string verb = args.empty() ? "list" : args[0];
  auto unreadable = [](std::error_code const& ec) {
    return ec == std::errc::no_such_file_or_directory ? std::string("(gone: delivered or moved meanwhile)")
                                                      : "(unreadable: " + ec.message() + ")";
  };
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
          std::cout << id << "  " << queue::to_string(st) << "  "
                    << (m.error() == errc::invalid_argument ? std::string("(damaged: moved to corrupt/)")
                                                            : unreadable(m.error()))
                    << "\n";
          continue;
        }
        std::cout << id << "  " << queue::to_string(st) << "  " << utc(m->env.arrival) << "  " << m->body_size
                  << " bytes  attempts " << m->env.attempts;
        if (auto next = next_attempt(q, st, id)) std::cout << "  next " << utc(next);
        std::cout << "  from <" << printable(m->env.sender.to_string()) << ">\n";
        for (auto const& r : m->env.recipients)
          std::cout << "    to <" << printable(r.addr.to_string()) << ">  " << recipient_state(r) << "\n";
      }
    }
    std::cout << total << " message" << (total == 1 ? "" : "s") << "\n";
    return 0;
  }
  if (verb == "show") {
    if (args.size() != 2) die("queue show needs one queue id", 2);
    auto const& id = args[1];
    if (id.find('/') != std::string::npos || id.find("..") != std::string::npos) die("bad queue id " + id, 2);
    auto st = find(q, id);
    if (!st) die(id + ": no such message");
    if (*st == queue::state::corrupt) {
      std::cout << "id: " << id << "\nstate: corrupt (the file does not parse; see the log)\n";
      return 0;
    }
    auto m = q.read(*st, id);
    if (!m) die(id + ": " + unreadable(m.error()));
    auto const& e = m->env;
    std::cout << "id: " << id << "\nstate: " << queue::to_string(*st) << "\narrival: " << utc(e.arrival)
              << "\nsize: " << m->body_size << " bytes\nattempts: " << e.attempts << "\n";
    if (auto next = next_attempt(q, *st, id)) std::cout << "next attempt: " << utc(next) << "\n";
    std::cout << "delay warning: " << (e.delay_warned ? "sent " + utc(e.delay_warned) : std::string("not sent")) << "\n";
    std::cout << "sender: <" << printable(e.sender.to_string()) << ">\n";
    std::cout << "client: " << printable(e.client) << "  helo: " << printable(e.helo) << "  protocol: "
              << printable(e.protocol) << (e.auth_user.empty() ? "" : "  auth: " + printable(e.auth_user)) << "\n";
    std::string params;
    if (e.params.size) params += " SIZE=" + std::to_string(*e.params.size);
    if (e.params.body == smtp::body_type::eight_bit_mime) params += " BODY=8BITMIME";
    if (e.params.body == smtp::body_type::binary_mime) params += " BODY=BINARYMIME";
    if (e.params.smtputf8) params += " SMTPUTF8";
    if (e.params.ret != smtp::dsn_ret::unspecified)
      params += e.params.ret == smtp::dsn_ret::full ? " RET=FULL" : " RET=HDRS";
    if (!e.params.envid.empty()) params += " ENVID=" + printable(smtp::xtext_encode(e.params.envid));
    if (!params.empty()) std::cout << "parameters:" << params << "\n";
    for (auto const& r : e.recipients) {
      std::cout << "recipient <" << printable(r.addr.to_string()) << ">\n  notify: " << notify_text(r.params.notify);
      if (!r.params.orcpt.empty()) std::cout << "  orcpt: " << printable(r.params.orcpt_type + ";" + r.params.orcpt);
      std::cout << "\n  state: " << recipient_state(r) << "\n";
    }
    // The message's header, as far as 64 KiB.
    auto body = q.read_body(*m);
    if (body) {
      std::string_view text = *body;
      auto end = text.find("\r\n\r\n");
      if (end == std::string_view::npos) end = text.find("\n\n");
      text = text.substr(0, std::min<std::size_t>(end == std::string_view::npos ? text.size() : end, 64 * 1024));
      std::cout << "header:\n";
      std::size_t pos = 0;
      while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        std::cout << "  " << printable(line) << "\n";
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
      }
    }
    return 0;
  }
  if (verb == "flush") {
    // The running mailroomd's queue manager looks at deferred/ every few seconds and takes what
    // is due (mtime <= now): setting the due time is all it takes.
    std::vector<std::string> ids;
    if (args.size() > 1) {
      for (std::size_t i = 1; i < args.size(); ++i) {
        if (!fs::exists(q.path(queue::state::deferred, args[i])) || args[i].find('/') != std::string::npos) {
          std::cerr << "mailroomctl: " << args[i] << ": not deferred\n";
          return 1;
        }
        ids.push_back(args[i]);
      }
    } else {
      ids = q.list(queue::state::deferred).value();
    }
    std::size_t n = 0;
    for (auto const& id : ids)
      if (run_task(q.defer_until(id, std::chrono::system_clock::now()))) ++n;  // gone meanwhile: not counted
    std::cout << n << " deferred message" << (n == 1 ? "" : "s") << " due now\n";
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
    "       mailroomctl --config FILE queue show ID\n"
    "       mailroomctl --config FILE queue flush [ID...]|delete ID...|hold ID...|release ID...\n"
    "       mailroomctl --config FILE user list\n"
    "       mailroomctl --config FILE user add|passwd [--scheme SCHEME] NAME   (password on stdin)\n"
    "       mailroomctl --config FILE user del NAME\n"
    "       mailroomctl --config FILE fetch list | run [ID...]\n"
    "       mailroomctl --config FILE fetch add ID --host H --user U --to ADDR [--protocol imap|pop3] [--port P]\n"
    "                  [--tls implicit|verify|required|opportunistic|none] [--folder F] [--delete] [--interval S]\n"
    "       mailroomctl dkim keygen|sign|verify ...   (mailroomctl dkim --help)\n"
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

// What a fetch state file (mra::fetcher's log) remembers: the number of messages.
std::size_t remembered(std::string const& path) {
  std::set<std::string> seen;
  std::ifstream in(path);
  std::string uidvalidity;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("seen ", 0) == 0) seen.insert(l.substr(5));
    else if (l.rfind("uidvalidity ", 0) == 0 && l != uidvalidity) {
      seen.clear();
      uidvalidity = l;
    }
  }
  return seen.size();
}

std::string toml_string(std::string const& v) {
  std::string out = "\"";
  for (char ch : v) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) die("control characters are not allowed in fetch settings", 2);
    out += ch;
  }
  return out + "\"";
}

int fetch_cmd(std::string const& config_path, mailroomd::config const& c, std::vector<std::string> const& args) {
  std::string verb = args.empty() ? "list" : args[0];
  if (verb == "list") {
    for (auto const& f : c.fetches)
      std::cout << f.id << "  " << f.protocol << "://" << f.user << "@" << f.host << ":" << f.port << " tls=" << f.tls
                << (f.protocol == "imap" ? " folder=" + f.folder : std::string()) << (f.keep ? " keep" : " delete")
                << " -> " << f.deliver_to << " every " << f.interval << "s, "
                << remembered(c.data_dir + "/fetch/" + f.id + ".state") << " remembered\n";
    return 0;
  }
  if (verb == "run") {
    std::vector<mailroomd::fetch_account> chosen;
    for (auto const& f : c.fetches)
      if (args.size() == 1 || std::find(args.begin() + 1, args.end(), f.id) != args.end()) chosen.push_back(f);
    if (args.size() > 1 && chosen.size() != args.size() - 1) die("no such fetch account among the arguments", 1);
    log::logger logger(std::make_shared<log::stderr_sink>(), log::level::warning, "mailroomctl");
    blocking_pool pool(2);
    auto sp = queue::spool::open(c.data_dir + "/queue", pool, logger);
    if (!sp) die("queue: " + sp.error().message());
    asio::io_context io(1);
    net::dns::resolver dns(io.get_executor());
    int status = 0;
    asio::co_spawn(io, [&]() -> task<void> {
      for (auto const& f : chosen) {
        auto a = mailroomd::to_account(f);
        if (!a) {
          std::cerr << a.error() << "\n";
          status = 1;
          continue;
        }
        auto fe = std::make_shared<mra::fetcher>(io.get_executor(), *a, *sp, c.data_dir + "/fetch", &dns, logger);
        auto r = co_await fe->fetch_once();
        if (!r) {
          std::cerr << f.id << ": " << r.error().message() << "\n";
          status = 1;
          continue;
        }
        std::cout << f.id << ": fetched " << r->fetched << ", already had " << r->seen << ", deleted " << r->deleted
                  << ", too large " << r->skipped << "\n";
      }
      dns.cancel();
    }, asio::detached);
    io.run();
    return status;
  }
  if (verb == "add") {
    if (args.size() < 2) die("fetch add needs an id", 2);
    mailroomd::fetch_account f;
    f.id = args[1];
    std::string port;
    for (std::size_t i = 2; i < args.size(); ++i) {
      auto const& o = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) die(o + " needs a value", 2);
        return args[++i];
      };
      if (o == "--host") f.host = value();
      else if (o == "--user") f.user = value();
      else if (o == "--to") f.deliver_to = value();
      else if (o == "--protocol") f.protocol = value();
      else if (o == "--port") port = value();
      else if (o == "--tls") f.tls = value();
      else if (o == "--folder") f.folder = value();
      else if (o == "--interval") f.interval = std::stoull(value());
      else if (o == "--delete") f.keep = false;
      else die("unknown option " + o, 2);
    }
    if (std::any_of(c.fetches.begin(), c.fetches.end(), [&](auto const& x) { return x.id == f.id; }))
      die("fetch account " + f.id + " exists", 1);
    f.password = read_password();
    std::string table = "\n[[fetch]]\nid = " + toml_string(f.id) + "\nprotocol = " + toml_string(f.protocol) +
                        "\nhost = " + toml_string(f.host) + "\ntls = " + toml_string(f.tls) + "\nuser = " +
                        toml_string(f.user) + "\npassword = " + toml_string(f.password) + "\nfolder = " +
                        toml_string(f.folder) + "\nkeep = " + (f.keep ? "true" : "false") + "\ndeliver_to = " +
                        toml_string(f.deliver_to) + "\ninterval = " + std::to_string(f.interval) + "\n" +
                        (port.empty() ? std::string() : "port = " + port + "\n");
    std::string content;
    {
      std::ifstream in(config_path);
      content.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto tmp = config_path + ".mailroomctl";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << content << table;
      if (!out.flush()) die("cannot write " + tmp);
    }
    auto check = mailroomd::load(tmp);  // refuse what mailroomd would refuse
    if (!check) {
      std::remove(tmp.c_str());
      die(check.error(), 2);
    }
    ::chmod(tmp.c_str(), 0600);  // it holds a password now
    if (FILE* fh = std::fopen(tmp.c_str(), "r")) {
      ::fsync(fileno(fh));
      std::fclose(fh);
    }
    if (::rename(tmp.c_str(), config_path.c_str()) != 0) die("cannot replace " + config_path + ": " + std::strerror(errno));
    (void)fsync_directory(fs::path(config_path).parent_path().string());
    std::cout << "added fetch account " << f.id << " (restart mailroomd to start polling it)\n";
    return 0;
  }
  die("unknown fetch command " + verb, 2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "dkim") return mailroomctl::dkim_cmd({args.begin() + 1, args.end()});
  if (std::find_if(args.begin(), args.end(), [](auto const& a) { return a == "--help" || a == "-h"; }) != args.end()) {
    std::cout << usage_text;
    return 0;
  }
  if (args.size() < 3 || args[0] != "--config" || (args[2] != "queue" && args[2] != "user" && args[2] != "fetch")) {
    std::cerr << usage_text;
    return 2;
  }
  auto c = mailroomd::load(args[1]);
  if (!c) die(c.error());
  std::vector<std::string> rest(args.begin() + 3, args.end());
  if (args[2] == "fetch") return fetch_cmd(args[1], *c, rest);
  return args[2] == "queue" ? queue_cmd(*c, rest) : user_cmd(*c, rest);
} catch (std::exception const& e) {
  std::cerr << "mailroomctl: " << e.what() << "\n";
  return 1;
}
