#include "mailroom/filter/clamd.hpp"

#include <algorithm>

#include "filter/detail/scan_connection.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::filter {

namespace {

/// A message_source over a string, handed out whole.
class view_source final : public smtp::message_source {
 public:
  explicit view_source(std::string_view s) : s_(s) {}
  task<result<std::span<char const>>> read() override {
    std::span<char const> out(s_.data(), s_.size());
    done_ += s_.size();
    s_ = {};
    co_return out;
  }
  std::uint64_t size() const noexcept override { return done_; }

 private:
  std::string_view s_;
  std::uint64_t done_ = 0;
};

void put_length(char* out, std::uint32_t n) {
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
}

}  // namespace

clamd_client::clamd_client(executor ex, clamd_options opts, log::logger logger)
    : ex_(std::move(ex)), opts_(std::move(opts)), log_(logger.with_component("clamd")) {
  opts_.chunk_size = std::clamp<std::size_t>(opts_.chunk_size, 1, 1u << 30);
}

task<result<clamd_verdict>> clamd_client::scan(std::string_view message) {
  if (message.size() > opts_.max_size && opts_.on_oversize == clamd_options::oversize::fail)
    co_return fail(scan_errc::message_too_large);  // known before connecting
  view_source src(message);
  co_return co_await scan(src);
}

task<result<clamd_verdict>> clamd_client::scan(smtp::message_source& message) {
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  auto& c = *conn;
  // One buffer: a chunk's 4-octet length, then its data.
  std::string chunk;
  chunk.reserve(4 + opts_.chunk_size);
  chunk.assign("zINSTREAM", 10);  // with its NUL
  chunk.append(4, '\0');
  std::size_t start = chunk.size();  // where the current chunk's data begins
  std::uint64_t sent = 0;
  bool truncated = false, ended = false;
  std::error_code write_error;

  while (!ended) {
    auto piece = co_await message.read();
    if (!piece) co_return fail(piece.error());
    std::string_view data(piece->data(), piece->size());
    if (data.empty()) ended = true;
    if (sent + data.size() > opts_.max_size) {
      if (opts_.on_oversize == clamd_options::oversize::fail) co_return fail(scan_errc::message_too_large);
      data = data.substr(0, static_cast<std::size_t>(opts_.max_size - sent));
      truncated = ended = true;
    }
    sent += data.size();
    while (!data.empty()) {
      std::size_t room = start + opts_.chunk_size - chunk.size();
      auto take = std::min(room, data.size());
      chunk.append(data.substr(0, take));
      data.remove_prefix(take);
      if (chunk.size() - start == opts_.chunk_size) {
        put_length(chunk.data() + start - 4, static_cast<std::uint32_t>(opts_.chunk_size));
        auto w = co_await c.write(std::string_view(chunk));
        if (!w) {
          write_error = w.error();
          break;
        }
        chunk.assign(4, '\0');
        start = 4;
      }
    }
    if (write_error) break;
  }
  if (!write_error) {
    // The last partial chunk (if any), then the zero length that ends the stream.
    std::size_t const tail = chunk.size() - start;
    if (tail > 0) {
      put_length(chunk.data() + start - 4, static_cast<std::uint32_t>(tail));
      chunk.append(4, '\0');
    }
    auto w = co_await c.write(std::string_view(chunk));
    if (!w) write_error = w.error();
  }
  // clamd answers as soon as it gives up (size limit) and closes: after a write that failed
  // because it closed, its reply may still be waiting.
  if (write_error && write_error != net::errc::eof) co_return fail(write_error);
  clamd_reply_parser p(opts_.max_reply);
  auto reply = co_await detail::read_reply(c, p);
  if (!reply) co_return fail(write_error ? write_error : reply.error());
  auto v = interpret_scan_reply(*reply);
  if (!v) {
    log_.warning("scan failed", {{"scanner", opts_.address.to_string()}, {"reply", *reply}});
    co_return v;
  }
  v->truncated = truncated;
  co_return v;
}

task<result<std::string>> clamd_client::command(std::string_view cmd) {
  auto conn = co_await detail::scan_connection::open(ex_, opts_.address, opts_.deadlines);
  if (!conn) co_return fail(conn.error());
  std::string line = "z" + std::string(cmd);
  line.push_back('\0');
  if (auto w = co_await conn->write(std::string_view(line)); !w) co_return fail(w.error());
  clamd_reply_parser p(opts_.max_reply);
  co_return co_await detail::read_reply(*conn, p);
}

task<result<void>> clamd_client::ping() {
  auto r = co_await command("PING");
  if (!r) co_return fail(r.error());
  if (*r != "PONG") co_return fail(scan_errc::malformed_reply);
  co_return result<void>{};
}

task<result<std::string>> clamd_client::version() {
  auto r = co_await command("VERSION");
  if (!r) co_return fail(r.error());
  if (r->empty()) co_return fail(scan_errc::malformed_reply);
  co_return std::move(*r);
}

}  // namespace mailroom::filter
