#include "mailroom/filter/rspamd.hpp"

#include "filter/detail/http_reply.hpp"
#include "filter/detail/scan_connection.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter {

namespace {

detail::http_limits http_limits_of(rspamd_reply_limits const& l) { return {l.max_line, l.max_headers, l.max_body}; }

std::string host_of(scanner_address const& a) {
  if (a.k == scanner_address::kind::unix_socket) return "localhost";
  auto const& ip = a.endpoint.address();
  std::string h = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
  return h + ":" + std::to_string(a.endpoint.port());
}

}  // namespace

rspamd_client::rspamd_client(executor ex, rspamd_options opts, log::logger logger)
    : ex_(std::move(ex)), opts_(std::move(opts)), log_(logger.with_component("rspamd")) {}

task<result<rspamd_verdict>> rspamd_client::scan(std::string_view message, rspamd_envelope const& env) {
  if (message.size() > opts_.max_size) co_return fail(scan_errc::message_too_large);
  auto head = rspamd_request_head(opts_.path, host_of(opts_.address), env, message.size());
  if (!head) co_return fail(head.error());
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  if (auto w = co_await conn->write(std::string_view(*head)); !w) co_return fail(w.error());
  if (auto w = co_await conn->write(message); !w) co_return fail(w.error());

  rspamd_reply_parser p(opts_.limits);
  auto out = co_await detail::read_reply(*conn, p);
  if (!out && p.status() != 0 && p.status() != 200)
    log_.warning("scan failed", {{"scanner", opts_.address.to_string()}, {"status", std::to_string(p.status())},
                                 {"error", p.error_text()}});
  co_return out;
}

task<result<void>> rspamd_client::ping() {
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  std::string const req = "GET /ping HTTP/1.1\r\nHost: " + host_of(opts_.address) + "\r\nConnection: close\r\n\r\n";
  if (auto w = co_await conn->write(std::string_view(req)); !w) co_return fail(w.error());
  detail::http_response_parser p(http_limits_of(opts_.limits));
  auto resp = co_await detail::read_reply(*conn, p);
  if (!resp) co_return fail(resp.error());
  std::string_view body = resp->body;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  if (resp->status != 200 || body != "pong") co_return fail(scan_errc::malformed_reply);
  co_return result<void>{};
}

}  // namespace mailroom::filter
