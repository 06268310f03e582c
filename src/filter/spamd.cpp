#include "mailroom/filter/spamd.hpp"

#include <array>

#include "filter/detail/scan_connection.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter {

spamd_client::spamd_client(executor ex, spamd_options opts, log::logger logger)
    : ex_(std::move(ex)), opts_(std::move(opts)), log_(logger.with_component("spamd")) {}

task<result<spamd_verdict>> spamd_client::scan(std::string_view message, spamd_command cmd) {
  if (message.size() > opts_.max_size) co_return fail(scan_errc::message_too_large);
  auto head = spamd_request_head(cmd, message.size(), opts_.user);
  if (!head) co_return fail(head.error());
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  if (auto w = co_await conn->write(std::string_view(*head)); !w) co_return fail(w.error());
  if (auto w = co_await conn->write(message); !w) co_return fail(w.error());
  conn->shutdown_send();

  spamd_reply_parser p(cmd, opts_.limits);
  auto reply = co_await detail::read_reply(*conn, p);
  if (!reply) co_return fail(reply.error());
  auto v = interpret_spamd_reply(*reply, cmd);
  if (!v)
    log_.warning("scan failed", {{"scanner", opts_.address.to_string()},
                                 {"code", std::to_string(reply->code)}, {"reply", reply->message}});
  co_return v;
}

task<result<void>> spamd_client::ping() {
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  if (auto w = co_await conn->write(std::string_view("PING SPAMC/1.5\r\n\r\n")); !w) co_return fail(w.error());
  conn->shutdown_send();
  std::string line;
  std::array<char, 512> buf;
  for (;;) {
    if (auto lf = line.find('\n'); lf != std::string::npos) {
      line.resize(lf);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      break;
    }
    if (line.size() > opts_.limits.max_line) co_return fail(scan_errc::reply_too_large);
    auto n = co_await conn->read_some(buf);
    if (!n) co_return fail(n.error());
    line.append(buf.data(), *n);
  }
  // "SPAMD/1.5 0 PONG"
  if (!line.starts_with("SPAMD/") || !line.ends_with(" 0 PONG")) co_return fail(scan_errc::malformed_reply);
  co_return result<void>{};
}

}  // namespace mailroom::filter
