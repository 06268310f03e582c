// milter_check: runs one message through a milter (opendkim, rspamd, clamav-milter, ...) the way
// an MTA would, then prints the message with the milter's changes applied on stdout and the
// verdict (and any envelope changes) on stderr.
//
//   milter_check --milter inet:PORT@HOST|inet6:PORT@HOST|unix:PATH [--from ADDR] [--rcpt ADDR]...
//                [--helo NAME] [--client-ip IP] [--client-name NAME] [--macro NAME=VALUE]...
//                [--timeout SECONDS] [--on-failure tempfail|accept|reject] < message
//
// Exit status: 0 when the milter answered (whatever it decided), 2 when it failed and the
// --on-failure policy was applied, 1 for a usage error.
#include <iostream>
#include <iterator>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>

#include "mailroom/filter/milter.hpp"

using namespace mailroom;
namespace milter = mailroom::filter::milter;

namespace {

char const* name(milter::action a) {
  switch (a) {
    case milter::action::continue_: return "continue";
    case milter::action::accept: return "accept";
    case milter::action::reject: return "reject";
    case milter::action::tempfail: return "tempfail";
    case milter::action::discard: return "discard";
    case milter::action::reply: return "reply";
    case milter::action::skip: return "skip";
    case milter::action::connection_failure: return "connection-failure";
  }
  return "?";
}

void print_verdict(milter::verdict const& v, char const* step) {
  std::cerr << "verdict: " << name(v.act);
  if (v.smtp) std::cerr << " " << v.smtp->code << " " << v.smtp->text;
  std::cerr << " (at " << step << ")\n";
}

// Bare LF line ends (a message typed or piped in) become CRLF, as the message would be stored.
std::string crlf(std::string const& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
    out += in[i];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string spec, from = "<>", helo = "client.invalid", client_ip = "127.0.0.1", client_name = "localhost";
  std::vector<std::string> rcpts;
  milter::macros extra;
  milter::client_options opts;
  auto policy = milter::failure_mode::tempfail;
  for (int i = 1; i < argc; ++i) {
    std::string o = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + o);
      return argv[++i];
    };
    if (o == "--milter") spec = next();
    else if (o == "--from") from = "<" + next() + ">";
    else if (o == "--rcpt") rcpts.push_back("<" + next() + ">");
    else if (o == "--helo") helo = next();
    else if (o == "--client-ip") client_ip = next();
    else if (o == "--client-name") client_name = next();
    else if (o == "--macro") {
      auto kv = next();
      auto eq = kv.find('=');
      if (eq == std::string::npos) throw std::runtime_error("--macro wants NAME=VALUE");
      extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (o == "--timeout") {
      opts.limits.command = opts.limits.end_of_message = opts.limits.connect = std::chrono::seconds(std::stol(next()));
    } else if (o == "--on-failure") {
      auto p = next();
      policy = p == "accept" ? milter::failure_mode::accept
               : p == "reject" ? milter::failure_mode::reject
                               : milter::failure_mode::tempfail;
    } else {
      throw std::runtime_error("unknown option " + o);
    }
  }
  if (spec.empty()) throw std::runtime_error("usage: milter_check --milter SPEC [--from ADDR] [--rcpt ADDR]... < message");
  if (rcpts.empty()) rcpts.push_back("<postmaster>");
  std::string const message = crlf(std::string(std::istreambuf_iterator<char>(std::cin), {}));

  milter::peer client;
  auto addr = asio::ip::make_address(client_ip);
  client.fam = addr.is_v6() ? milter::family::inet6 : milter::family::inet;
  client.address = client_ip;
  client.port = 40000;

  // Macros as Sendmail sends them: every stage gets the ones it usually carries; the milter's
  // own lists (if it sent any) pick from these.
  milter::macros conn = {{"j", "milter-check.invalid"}, {"{daemon_name}", "milter_check"},
                         {"_", client_name + " [" + client_ip + "]"}, {"{client_addr}", client_ip},
                         {"{client_name}", client_name}};
  conn.insert(conn.end(), extra.begin(), extra.end());
  milter::macros const mail_macros = {{"{mail_addr}", from}, {"i", "MC0001"}};
  milter::macros const eom_macros = {{"i", "MC0001"}};

  int status = 0;
  asio::io_context io(1);
  asio::co_spawn(io, [&]() -> task<void> {
    auto fail_with = [&](std::error_code ec, char const* step) {
      std::cerr << "milter failed at " << step << ": " << ec.message() << "\n";
      print_verdict(milter::failure_verdict(policy), "policy");
      std::cout << message;
      status = 2;
    };
    auto c = co_await milter::client::connect(io.get_executor(), spec, opts);
    if (!c) {
      fail_with(c.error(), "connect");
      co_return;
    }
    auto& m = **c;
    // Each step: stop at the first verdict that ends the message.
    auto settled = [&](result<milter::verdict> const& v, char const* step) {
      if (!v) {
        fail_with(v.error(), step);
        return true;
      }
      if (v->act == milter::action::continue_) return false;
      if (v->act == milter::action::reply || v->act == milter::action::reject || v->act == milter::action::tempfail)
        if (std::string_view(step) == "rcpt") return false;  // that recipient only
      print_verdict(*v, step);
      std::cout << message;
      return true;
    };
    auto v = co_await m.on_connect(client_name, client, conn);
    if (settled(v, "connect")) co_return;
    v = co_await m.helo(helo);
    if (settled(v, "helo")) co_return;
    v = co_await m.mail(from, {}, mail_macros);
    if (settled(v, "mail")) co_return;
    for (auto const& r : rcpts) {
      v = co_await m.rcpt(r);
      if (settled(v, "rcpt")) co_return;
      if (v->act != milter::action::continue_) print_verdict(*v, "rcpt");
    }
    v = co_await m.data();
    if (settled(v, "data")) co_return;
    auto out = co_await milter::send_message(m, message, {}, eom_macros);
    if (!out) {
      fail_with(out.error(), "message");
      co_return;
    }
    auto applied = milter::apply(message, out->changes, m.leading_space());
    if (!applied) {
      fail_with(applied.error(), "apply");
      co_return;
    }
    print_verdict(out->final, "end of message");
    for (auto const& [a, args] : applied->added_rcpts) std::cerr << "add rcpt: " << a << " " << args << "\n";
    for (auto const& a : applied->deleted_rcpts) std::cerr << "delete rcpt: " << a << "\n";
    if (applied->new_sender) std::cerr << "new sender: " << applied->new_sender->first << "\n";
    if (applied->quarantine) std::cerr << "quarantine: " << *applied->quarantine << "\n";
    std::cout << applied->message;
    co_await m.quit();
  }, asio::detached);
  io.run();
  return status;
} catch (std::exception const& e) {
  std::cerr << "milter_check: " << e.what() << "\n";
  return 1;
}
