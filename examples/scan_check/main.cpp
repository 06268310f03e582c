// scan_check: scans one message (standard input) with clamd, spamd or rspamd and prints the
// verdict, as a filter would before accepting the message.
//
//   scan_check clamd|spamd|rspamd ADDRESS [--ping] [--max-size N] [--timeout SECONDS]
//              [clamd: --truncate] [spamd: --symbols|--report --user U]
//              [rspamd: --ip A --helo H --from F --rcpt R (repeatable) --queue-id Q --user U]
//   ADDRESS: inet:PORT@HOST, HOST:PORT, unix:/path or /path
//
// Output, one "key=value" per line: clamd "infected=yes|no", "signature=NAME"; spamd
// "spam=yes|no", "score=S", "threshold=T", "symbols=A,B"; rspamd "action=A", "score=S",
// "required_score=T", "symbols=NAME:SCORE,...", "add_header=NAME: VALUE", "remove_header=NAME",
// "smtp_message=TEXT". --ping prints "pong". A failure prints "error=CATEGORY:VALUE MESSAGE"
// and exits 1 (the caller then applies its policy: tempfail, or accept unscanned); bad usage
// exits 2.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "mailroom/filter/clamd.hpp"
#include "mailroom/filter/rspamd.hpp"
#include "mailroom/filter/spamd.hpp"

using namespace mailroom;
using namespace mailroom::filter;

namespace {

int report_error(std::error_code ec) {
  std::cout << "error=" << ec.category().name() << ":" << ec.value() << " " << ec.message() << "\n";
  return 1;
}

/// Folded header values on one output line.
std::string one_line(std::string s) {
  std::replace_if(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return s;
}

std::string number(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", d);
  return buf;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::cerr << "usage: scan_check clamd|spamd|rspamd ADDRESS [options] < message\n";
    return 2;
  }
  std::string const scanner = argv[1];
  auto address = scanner_address::parse(argv[2]);
  if (!address) {
    std::cerr << "bad address: " << argv[2] << "\n";
    return 2;
  }
  bool ping = false, truncate = false;
  std::optional<std::uint64_t> max_size;
  std::optional<int> timeout;
  spamd_command cmd = spamd_command::check;
  std::string user;
  rspamd_envelope env;
  for (int i = 3; i < argc; ++i) {
    std::string o = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + o);
      return argv[++i];
    };
    if (o == "--ping") ping = true;
    else if (o == "--truncate") truncate = true;
    else if (o == "--max-size") max_size = std::stoull(next());
    else if (o == "--timeout") timeout = std::stoi(next());
    else if (o == "--symbols") cmd = spamd_command::symbols;
    else if (o == "--report") cmd = spamd_command::report;
    else if (o == "--user") user = env.user = next();
    else if (o == "--ip") env.ip = asio::ip::make_address(next());
    else if (o == "--helo") env.helo = next();
    else if (o == "--from") env.from = next();
    else if (o == "--rcpt") env.rcpts.push_back(next());
    else if (o == "--queue-id") env.queue_id = next();
    else throw std::runtime_error("unknown option " + o);
  }
  scan_deadlines deadlines;
  if (timeout) deadlines.connect = deadlines.io = deadlines.total = std::chrono::seconds(*timeout);
  std::string message;
  if (!ping) message.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());

  asio::io_context io;
  log::logger logger(std::make_shared<log::stderr_sink>(), log::level::warning);
  int status = 0;
  auto run = [&]() -> task<void> {
    std::ostringstream out;
    if (scanner == "clamd") {
      clamd_options o;
      o.address = *address;
      o.deadlines = deadlines;
      if (max_size) o.max_size = *max_size;
      if (truncate) o.on_oversize = clamd_options::oversize::scan_prefix;
      clamd_client c(io.get_executor(), o, logger);
      if (ping) {
        auto r = co_await c.ping();
        if (!r) status = report_error(r.error());
        else out << "pong\n";
      } else {
        auto r = co_await c.scan(std::string_view(message));
        if (!r) status = report_error(r.error());
        else out << "infected=" << (r->infected ? "yes" : "no") << "\nsignature=" << r->signature
                 << "\ntruncated=" << (r->truncated ? "yes" : "no") << "\n";
      }
    } else if (scanner == "spamd") {
      spamd_options o;
      o.address = *address;
      o.deadlines = deadlines;
      o.user = user;
      if (max_size) o.max_size = *max_size;
      spamd_client c(io.get_executor(), o, logger);
      if (ping) {
        auto r = co_await c.ping();
        if (!r) status = report_error(r.error());
        else out << "pong\n";
      } else {
        auto r = co_await c.scan(message, cmd);
        if (!r) {
          status = report_error(r.error());
        } else {
          out << "spam=" << (r->spam ? "yes" : "no") << "\nscore=" << number(r->score)
              << "\nthreshold=" << number(r->threshold) << "\nsymbols=";
          for (std::size_t i = 0; i < r->symbols.size(); ++i) out << (i ? "," : "") << r->symbols[i];
          out << "\n";
          if (cmd == spamd_command::report) out << "report_lines=" << std::count(r->report.begin(), r->report.end(), '\n') << "\n";
        }
      }
    } else if (scanner == "rspamd") {
      rspamd_options o;
      o.address = *address;
      o.deadlines = deadlines;
      if (max_size) o.max_size = *max_size;
      rspamd_client c(io.get_executor(), o, logger);
      if (ping) {
        auto r = co_await c.ping();
        if (!r) status = report_error(r.error());
        else out << "pong\n";
      } else {
        auto r = co_await c.scan(message, env);
        if (!r) {
          status = report_error(r.error());
        } else {
          out << "action=" << r->action << "\nscore=" << number(r->score) << "\nrequired_score="
              << number(r->required_score) << "\nsymbols=";
          for (std::size_t i = 0; i < r->symbols.size(); ++i)
            out << (i ? "," : "") << r->symbols[i].name << ":" << number(r->symbols[i].score);
          out << "\n";
          for (auto const& h : r->add_headers) out << "add_header=" << h.name << ": " << one_line(h.value) << "\n";
          for (auto const& h : r->remove_headers) out << "remove_header=" << h.name << "\n";
          if (!r->smtp_message.empty()) out << "smtp_message=" << r->smtp_message << "\n";
        }
      }
    } else {
      std::cerr << "unknown scanner " << scanner << "\n";
      status = 2;
    }
    std::cout << out.str();
  };
  asio::co_spawn(io, run(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  return status;
} catch (std::exception const& e) {
  std::cerr << "scan_check: " << e.what() << "\n";
  return 2;
}
