// The TLS stream: mbedTLS works on two bounded in-memory ciphertext buffers (its BIO callbacks
// never block), and coroutines move those bytes to and from the next layer when mbedTLS asks.
//
// One read and one write may run at once (net::stream's contract). Only one of them talks to the
// next layer in each direction at a time: whoever finds the other already flushing or filling
// waits for it to finish and then retries its mbedTLS call.
#include <algorithm>
#include <chrono>
#include <cstring>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "net/tls/detail/mbedtls.hpp"

namespace mailroom::net::tls {

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// One maximal TLS record (16 KiB plaintext plus header, MAC, padding and IV) fits in `in`; `out`
// holds two, so a record written by read_some (an alert) fits beside one in flight from write().
constexpr std::size_t record_limit = 16 * 1024 + 2048;
constexpr std::size_t in_capacity = record_limit;
constexpr std::size_t out_capacity = 2 * record_limit;

// Everything a connection owns; pending coroutines hold it so the stream may die under them.
struct state {
  state(std::unique_ptr<net::stream> n, std::shared_ptr<void> config_owner)
      : next(std::move(n)), owner(std::move(config_owner)), progress(next->get_executor()) {
    mbedtls_ssl_init(&ssl);
  }
  ~state() { mbedtls_ssl_free(&ssl); }
  state(state const&) = delete;
  state& operator=(state const&) = delete;

  std::unique_ptr<net::stream> next;
  std::shared_ptr<void> owner;  // the context whose mbedtls_ssl_config `ssl` points into
  mbedtls_ssl_context ssl;

  std::unique_ptr<unsigned char[]> in = std::make_unique<unsigned char[]>(in_capacity);
  std::size_t in_begin = 0, in_end = 0;
  std::unique_ptr<unsigned char[]> out = std::make_unique<unsigned char[]>(out_capacity);
  std::size_t out_len = 0;

  bool flushing = false;  // an operation is writing `out` to next
  bool filling = false;   // an operation is reading next into `in`
  asio::steady_timer progress;  // cancelled whenever a flush or fill ends, waking the other operation
  unsigned cancels = 0;         // bumped by cancel()/close() so a waiting operation ends too

  tls_details details;
  bool shut = false;    // we sent close_notify
  bool peer_closed = false;
  bool broken = false;  // a fatal error: no more records can be exchanged

  void notify() noexcept { progress.cancel(); }

  /// Waits until the other operation's flush or fill ends; fails if the stream was cancelled meanwhile.
  task<result<void>> wait_for_progress() {
    unsigned const epoch = cancels;
    progress.expires_at(asio::steady_timer::time_point::max());
    co_await progress.async_wait(use_tuple);
    if (cancels != epoch) co_return fail(std::error_code(asio::error::operation_aborted));
    co_return result<void>{};
  }
};

int bio_send(void* p, unsigned char const* buf, std::size_t len) {
  auto& s = *static_cast<state*>(p);
  std::size_t const n = std::min(len, out_capacity - s.out_len);
  if (n == 0) return MBEDTLS_ERR_SSL_WANT_WRITE;
  std::memcpy(s.out.get() + s.out_len, buf, n);
  s.out_len += n;
  return static_cast<int>(n);
}

int bio_recv(void* p, unsigned char* buf, std::size_t len) {
  auto& s = *static_cast<state*>(p);
  std::size_t const n = std::min(len, s.in_end - s.in_begin);
  if (n == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  std::memcpy(buf, s.in.get() + s.in_begin, n);
  s.in_begin += n;
  if (s.in_begin == s.in_end) s.in_begin = s.in_end = 0;
  return static_cast<int>(n);
}

// Sends everything in `out`, including what is appended meanwhile. If another operation is already
// flushing, waits for it instead (its errors are reported to it; the caller retries).
task<result<void>> flush(std::shared_ptr<state> s) {
  if (s->flushing) co_return co_await s->wait_for_progress();
  s->flushing = true;
  result<void> r;
  while (r && s->out_len > 0) {
    std::size_t const n = s->out_len;  // bytes appended during the write land after these
    r = co_await s->next->write(std::span<char const>(reinterpret_cast<char const*>(s->out.get()), n));
    if (r) {
      std::memmove(s->out.get(), s->out.get() + n, s->out_len - n);
      s->out_len -= n;
    }
  }
  s->flushing = false;
  s->notify();
  co_return r;
}

// Reads ciphertext into `in`; mbedTLS only asks for more once `in` is empty. If another operation
// is already reading, waits for it instead.
task<result<void>> fill(std::shared_ptr<state> s) {
  if (s->filling) co_return co_await s->wait_for_progress();
  s->filling = true;
  std::size_t const offset = s->in_end;
  auto r = co_await s->next->read_some(
      std::span<char>(reinterpret_cast<char*>(s->in.get()) + offset, in_capacity - offset));
  if (r) s->in_end += *r;
  s->filling = false;
  s->notify();
  if (!r) co_return fail(r.error());
  co_return result<void>{};
}

// Calls op (an mbedTLS function) until it stops asking for I/O. The value is op's final return code
// (>= 0 success, < 0 an mbedTLS error); the error is the next layer's (timeout, eof, ...).
template <class Op>
task<result<int>> drive(std::shared_ptr<state> s, Op op) {
  for (;;) {
    int const rc = op();
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
      if (auto r = co_await flush(s); !r) co_return fail(r.error());
    } else if (rc == MBEDTLS_ERR_SSL_WANT_READ && s->out_len > 0 && !s->flushing) {
      // Before waiting for the peer, make sure it has everything it needs to answer. (A concurrent
      // write that is flushing delivers it; waiting for that write could deadlock both peers.)
      if (auto r = co_await flush(s); !r) co_return fail(r.error());
    } else if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
      if (auto r = co_await fill(s); !r) co_return fail(r.error());
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    } else if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      continue;  // TLS 1.3 post-handshake message, nothing for the caller
#endif
    } else {
      co_return rc;
    }
  }
}

// Sets the thread's SNI sink for the duration of one synchronous mbedTLS call.
class sni_scope {
 public:
  explicit sni_scope(std::string* sink) noexcept { detail::sni_sink = sink; }
  ~sni_scope() { detail::sni_sink = nullptr; }
  sni_scope(sni_scope const&) = delete;
  sni_scope& operator=(sni_scope const&) = delete;
};

class tls_stream final : public net::stream {
 public:
  explicit tls_stream(std::shared_ptr<state> s) : s_(std::move(s)) {}
  ~tls_stream() override { close(); }

  executor get_executor() override { return s_->next->get_executor(); }

  task<result<std::size_t>> read_some(std::span<char> buf) override {
    auto s = s_;
    if (buf.empty()) co_return fail(mailroom::errc::invalid_argument);
    if (s->peer_closed) co_return fail(net::errc::eof);
    if (s->broken) co_return fail(errc::closed);
    auto r = co_await drive(s, [st = s.get(), buf] {
      return mbedtls_ssl_read(&st->ssl, reinterpret_cast<unsigned char*>(buf.data()), buf.size());
    });
    if (!r) co_return fail(r.error());
    if (*r > 0) {
      // Reading may have queued a record of our own (an alert); send it unless a write will.
      if (s->out_len > 0 && !s->flushing) (void)co_await flush(s);
      co_return static_cast<std::size_t>(*r);
    }
    // 0 would mean the BIO saw end of stream, which ours reports as an error instead.
    if (*r == 0 || *r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      s->peer_closed = true;
      co_return fail(net::errc::eof);
    }
    s->broken = true;
    co_return fail(detail::mbedtls_error(*r));
  }

  task<result<void>> write(std::span<char const> data) override {
    auto s = s_;
    if (s->broken || s->shut) co_return fail(errc::closed);
    std::size_t done = 0;
    while (done < data.size()) {
      // mbedtls_ssl_write takes at most one record's worth per call.
      auto const* p = reinterpret_cast<unsigned char const*>(data.data()) + done;
      std::size_t const len = data.size() - done;
      auto r = co_await drive(s, [st = s.get(), p, len] { return mbedtls_ssl_write(&st->ssl, p, len); });
      if (!r || *r < 0) {
        s->broken = true;  // a record may be half written
        co_return fail(r ? detail::mbedtls_error(*r) : r.error());
      }
      done += static_cast<std::size_t>(*r);
    }
    auto r = co_await flush(s);
    if (!r) s->broken = true;
    co_return r;
  }
  using stream::write;

  task<void> shutdown() override {
    auto s = s_;
    if (!s->shut && !s->broken) {
      s->shut = true;
      auto r = co_await drive(s, [st = s.get()] { return mbedtls_ssl_close_notify(&st->ssl); });
      if (r && *r == 0) (void)co_await flush(s);
    }
    co_await s->next->shutdown();
  }

  void close() noexcept override {
    cancel();
    s_->next->close();
  }

  void cancel() noexcept override {
    s_->next->cancel();
    ++s_->cancels;
    s_->notify();
  }

  void set_timeouts(timeouts t) override { s_->next->set_timeouts(t); }

  tls_details const* tls() const noexcept override { return &s_->details; }

 private:
  std::shared_ptr<state> s_;
};

// Runs the handshake on a prepared state. Failures: errc::verify_failed when the peer's
// certificate was rejected, errc::handshake_failed for any other TLS-level failure, the next
// layer's error (net::errc::timeout, net::errc::eof, ...) when the transport failed.
task<result<std::unique_ptr<net::stream>>> handshake(std::shared_ptr<state> s) {
  mbedtls_ssl_set_bio(&s->ssl, s.get(), bio_send, bio_recv, nullptr);
  auto r = co_await drive(s, [st = s.get()] {
    sni_scope scope(&st->details.server_name);
    return mbedtls_ssl_handshake(&st->ssl);
  });
  if (!r) co_return fail(r.error());
  if (*r != 0) {
    if (s->out_len > 0) (void)co_await flush(s);  // the alert telling the peer why
    if (*r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) co_return fail(errc::verify_failed);
#if defined(MBEDTLS_ERR_SSL_CERTIFICATE_VERIFICATION_WITHOUT_HOSTNAME)
    if (*r == MBEDTLS_ERR_SSL_CERTIFICATE_VERIFICATION_WITHOUT_HOSTNAME) co_return fail(errc::verify_failed);
#endif
    co_return fail(errc::handshake_failed);
  }
  if (auto f = co_await flush(s); !f) co_return fail(f.error());
  s->details.version = mbedtls_ssl_get_version(&s->ssl);
  s->details.cipher = mbedtls_ssl_get_ciphersuite(&s->ssl);
  co_return std::make_unique<tls_stream>(std::move(s));
}

}  // namespace

task<result<std::unique_ptr<stream>>> accept(std::shared_ptr<server_context> ctx, std::unique_ptr<stream> next) {
  if (!ctx || !next) co_return fail(mailroom::errc::invalid_argument);
  auto s = std::make_shared<state>(std::move(next), ctx);
  if (int rc = mbedtls_ssl_setup(&s->ssl, &ctx->get().conf)) co_return fail(detail::mbedtls_error(rc));
  co_return co_await handshake(std::move(s));
}

task<result<std::unique_ptr<stream>>> connect(std::shared_ptr<client_context> ctx, std::unique_ptr<stream> next,
                                              std::string const& server_name) {
  if (!ctx || !next) co_return fail(mailroom::errc::invalid_argument);
  auto s = std::make_shared<state>(std::move(next), ctx);
  if (int rc = mbedtls_ssl_setup(&s->ssl, &ctx->get().conf)) co_return fail(detail::mbedtls_error(rc));
  // An explicit null host name means "no SNI, chain-only verification" (mbedTLS >= 3.6.3 insists).
  if (int rc = mbedtls_ssl_set_hostname(&s->ssl, server_name.empty() ? nullptr : server_name.c_str()))
    co_return fail(detail::mbedtls_error(rc));
  s->details.server_name = server_name;
  co_return co_await handshake(std::move(s));
}

}  // namespace mailroom::net::tls
