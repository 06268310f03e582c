#include "mailroom/net/dns/resolver.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <asio/async_result.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/error.hpp"

namespace mailroom::net::dns {

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::nxdomain: return "no such domain";
    case errc::no_data: return "no records of the requested type";
    case errc::servfail: return "server failure";
    case errc::timeout: return "no answer in time";
    case errc::refused: return "query refused";
    case errc::bad_response: return "malformed answer";
    case errc::bad_name: return "malformed query name";
    case errc::cancelled: return "resolver shut down";
    case errc::other: return "resolver failure";
  }
  return nullptr;
}

// RR types and class as they appear on the wire (RFC 1035, RFC 3596).
constexpr int class_in = 1;
constexpr int type_a = 1;
constexpr int type_ptr = 12;
constexpr int type_mx = 15;
constexpr int type_txt = 16;
constexpr int type_aaaa = 28;

errc to_errc(int status) noexcept {
  switch (status) {
    case ARES_ENOTFOUND: return errc::nxdomain;
    case ARES_ENODATA: return errc::no_data;
    case ARES_ESERVFAIL: return errc::servfail;
    case ARES_ETIMEOUT: return errc::timeout;
    case ARES_EREFUSED: return errc::refused;
    case ARES_EBADRESP: return errc::bad_response;
    case ARES_EBADNAME:
    case ARES_EBADSTR: return errc::bad_name;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return errc::cancelled;
    default: return errc::other;
  }
}

std::string without_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return std::string(s);
}

// The raw outcome of one query: the c-ares status and, on success, the answer packet.
struct answer {
  int status = ARES_SUCCESS;
  std::vector<unsigned char> packet;
  int size() const noexcept { return static_cast<int>(packet.size()); }
};

// One query handed to c-ares; c-ares owns it until its callback runs, which happens exactly once
// (answer, failure, ares_cancel or ares_destroy). Completion is always posted, never run inline,
// so a resumed caller can never re-enter c-ares from inside one of its callbacks.
struct pending_query {
  virtual ~pending_query() = default;
  virtual void complete(answer a) = 0;
  std::size_t* outstanding = nullptr;  ///< the owning channel's count of queries in flight
};

template <class Handler>
class query_op final : public pending_query {
 public:
  query_op(Handler h, executor const& io)
      : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, io)) {}

  void complete(answer a) override {
    auto ex = work_.get_executor();
    asio::post(ex, [h = std::move(handler_), a = std::move(a)]() mutable { std::move(h)(std::move(a)); });
    work_.reset();
  }

 private:
  Handler handler_;
  asio::executor_work_guard<asio::associated_executor_t<Handler, executor>> work_;
};

// A socket c-ares opened, watched through Asio. The descriptor is released, never closed: the fd
// belongs to c-ares.
struct watch {
  watch(executor const& ex, ares_socket_t s) : fd(s), sd(ex) {
    std::error_code ec;
    sd.assign(fd, ec);
    usable = !ec;
  }
  ~watch() { close(); }
  void close() noexcept {
    open = false;
    if (sd.is_open()) sd.release();
  }

  ares_socket_t fd;
  asio::posix::stream_descriptor sd;
  bool usable = false;      // registered with the reactor
  bool open = true;         // c-ares has not closed it yet
  bool want_read = false;   // as last reported by c-ares
  bool want_write = false;
  bool reading = false;     // an async_wait is outstanding
  bool writing = false;
};

}  // namespace

// Owns the c-ares channel. Everything runs on the resolver's executor; c-ares is only ever entered
// from here (query start, socket readiness, retransmit timer, cancel, destroy). While no query is
// outstanding nothing is waited on, so an idle resolver does not keep its io_context running.
struct resolver::impl : std::enable_shared_from_this<resolver::impl> {
  explicit impl(executor e) : ex(std::move(e)), timer(std::in_place, ex) {}
  ~impl() { shutdown(); }

  void open(options const& opts) {
    static std::once_flag library_once;
    static int lib_status = ARES_SUCCESS;
    std::call_once(library_once, [] { lib_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (lib_status != ARES_SUCCESS) throw std::system_error(make_error_code(errc::other), ares_strerror(lib_status));

    // ares_query never applies resolv.conf search domains or ndots, so names are taken as FQDNs.
    ares_options o{};
    o.timeout = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(opts.timeout.count(), 1, 3'600'000));
    o.tries = std::max(opts.tries, 1);
    o.sock_state_cb = &impl::on_sock_state;
    o.sock_state_cb_data = this;
    int status = ares_init_options(&channel, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
    if (status != ARES_SUCCESS) {
      channel = nullptr;
      throw std::system_error(make_error_code(to_errc(status)),
                              std::string("ares_init_options: ") + ares_strerror(status));
    }
    if (!opts.servers.empty()) {
      std::string csv;
      for (auto const& s : opts.servers) {
        if (!csv.empty()) csv += ',';
        csv += s;
      }
      status = ares_set_servers_ports_csv(channel, csv.c_str());
      if (status != ARES_SUCCESS) {
        shutdown();
        throw std::invalid_argument("dns: malformed server list \"" + csv + "\"");
      }
    }
  }

  // Completes every outstanding query with errc::cancelled and gives up the channel.
  void shutdown() noexcept {
    if (!channel) return;
    ares_destroy(channel);  // runs every query callback (ARES_EDESTRUCTION) and closes the sockets
    channel = nullptr;
    for (auto& [fd, w] : watches) w->close();
    watches.clear();
    timer.reset();
  }

  void cancel() noexcept {
    if (!channel) return;
    ares_cancel(channel);
    settle();
  }

  void start(pending_query* q, std::string const& name, int type) {
    if (!channel) {
      std::unique_ptr<pending_query> owned(q);
      owned->complete(answer{ARES_EDESTRUCTION, {}});
      return;
    }
    if (name.find('\0') != std::string::npos) {
      std::unique_ptr<pending_query> owned(q);
      owned->complete(answer{ARES_EBADNAME, {}});
      return;
    }
    q->outstanding = &outstanding;
    ++outstanding;
    ares_query(channel, name.c_str(), class_in, type, &impl::on_answer, q);
    settle();
  }

  task<answer> query(std::string name, int type) {
    asio::use_awaitable_t<> token;
    return asio::async_initiate<asio::use_awaitable_t<>, void(answer)>(
        [this](auto handler, std::string const& n, int t) {
          using handler_type = std::decay_t<decltype(handler)>;
          start(new query_op<handler_type>(std::move(handler), ex), n, t);
        },
        token, std::move(name), type);
  }

  static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    std::unique_ptr<pending_query> q(static_cast<pending_query*>(arg));
    --*q->outstanding;
    answer a{status, {}};
    if (status == ARES_SUCCESS && abuf && alen > 0) a.packet.assign(abuf, abuf + alen);
    q->complete(std::move(a));
  }

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) noexcept {
    auto* self = static_cast<impl*>(data);
    try {
      auto it = self->watches.find(fd);
      if (!readable && !writable) {
        if (it != self->watches.end()) {
          it->second->close();
          self->watches.erase(it);
        }
        return;
      }
      if (it == self->watches.end()) it = self->watches.emplace(fd, std::make_shared<watch>(self->ex, fd)).first;
      it->second->want_read = readable != 0;
      it->second->want_write = writable != 0;
    } catch (...) {
      // Out of memory: the socket goes unwatched and its queries end by timeout.
    }
  }

  // Brings the waits in line with c-ares' wishes after every call into c-ares.
  void settle() {
    if (!channel) return;
    if (outstanding == 0) {
      timer->cancel();
      timer_armed = false;
      for (auto& [fd, w] : watches) {
        std::error_code ignored;
        if (w->usable && (w->reading || w->writing)) w->sd.cancel(ignored);
      }
      return;
    }
    for (auto& [fd, w] : watches) arm(w);
    timeval tv{};
    if (ares_timeout(channel, nullptr, &tv)) {
      auto due = std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) +
                 std::chrono::microseconds(tv.tv_usec);
      // An earlier wake-up is harmless (c-ares just finds nothing due), so only move it forward.
      if (!timer_armed || due < timer->expiry()) {
        timer->expires_at(due);
        timer_armed = true;
        timer->async_wait([weak = weak_from_this()](std::error_code ec) {
          auto self = weak.lock();
          if (ec == asio::error::operation_aborted || !self || !self->channel) return;
          self->timer_armed = false;
          ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
          self->settle();
        });
      }
    }
  }

  void arm(std::shared_ptr<watch> const& w) {
    if (!w->usable) return;
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_read, [weak = weak_from_this(), w](std::error_code ec) {
        w->reading = false;
        if (auto self = weak.lock()) self->on_ready(*w, ec, true);
      });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_write, [weak = weak_from_this(), w](std::error_code ec) {
        w->writing = false;
        if (auto self = weak.lock()) self->on_ready(*w, ec, false);
      });
    }
  }

  void on_ready(watch const& w, std::error_code ec, bool readable) {
    if (!w.open || !channel) return;
    if (ec != asio::error::operation_aborted)
      ares_process_fd(channel, readable ? w.fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : w.fd);
    settle();
  }

  executor ex;
  ares_channel channel = nullptr;
  std::map<ares_socket_t, std::shared_ptr<watch>> watches;
  std::optional<asio::steady_timer> timer;
  bool timer_armed = false;
  std::size_t outstanding = 0;
};

namespace {

std::string reverse_name(asio::ip::address const& addr) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string name;
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    for (auto i = b.size(); i-- > 0;) name += std::to_string(b[i]) + '.';
    return name + "in-addr.arpa";
  }
  auto b = addr.to_v6().to_bytes();
  for (auto i = b.size(); i-- > 0;) {
    name += hex[b[i] & 0xf];
    name += '.';
    name += hex[b[i] >> 4];
    name += '.';
  }
  return name + "ip6.arpa";
}

result<std::vector<mx_record>> parse_mx(answer const& a) {
  ares_mx_reply* list = nullptr;
  int status = ares_parse_mx_reply(a.packet.data(), a.size(), &list);
  if (status != ARES_SUCCESS) return fail(to_errc(status));
  std::vector<mx_record> out;
  for (auto* r = list; r; r = r->next) out.push_back({r->priority, without_trailing_dot(r->host)});
  ares_free_data(list);
  if (out.empty()) return fail(errc::no_data);
  std::stable_sort(out.begin(), out.end(), [](auto const& x, auto const& y) { return x.preference < y.preference; });
  return out;
}

result<std::vector<asio::ip::address>> parse_addresses(answer const& a, int type) {
  hostent* host = nullptr;
  int status = type == type_a ? ares_parse_a_reply(a.packet.data(), a.size(), &host, nullptr, nullptr)
                              : ares_parse_aaaa_reply(a.packet.data(), a.size(), &host, nullptr, nullptr);
  if (status != ARES_SUCCESS) return fail(to_errc(status));
  std::vector<asio::ip::address> out;
  for (char** p = host->h_addr_list; p && *p; ++p) {
    if (host->h_addrtype == AF_INET) {
      asio::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), *p, b.size());
      out.emplace_back(asio::ip::address_v4(b));
    } else if (host->h_addrtype == AF_INET6) {
      asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), *p, b.size());
      out.emplace_back(asio::ip::address_v6(b));
    }
  }
  ares_free_hostent(host);
  if (out.empty()) return fail(errc::no_data);
  return out;
}

result<std::vector<std::string>> parse_txt(answer const& a) {
  ares_txt_ext* list = nullptr;
  int status = ares_parse_txt_reply_ext(a.packet.data(), a.size(), &list);
  if (status != ARES_SUCCESS) return fail(to_errc(status));
  std::vector<std::string> out;
  for (auto* r = list; r; r = r->next) {
    if (r->record_start || out.empty()) out.emplace_back();
    out.back().append(reinterpret_cast<char const*>(r->txt), r->length);
  }
  ares_free_data(list);
  if (out.empty()) return fail(errc::no_data);
  return out;
}

result<std::vector<std::string>> parse_ptr(answer const& a, asio::ip::address const& addr) {
  hostent* host = nullptr;
  int status;
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    status = ares_parse_ptr_reply(a.packet.data(), a.size(), b.data(), static_cast<int>(b.size()), AF_INET, &host);
  } else {
    auto b = addr.to_v6().to_bytes();
    status = ares_parse_ptr_reply(a.packet.data(), a.size(), b.data(), static_cast<int>(b.size()), AF_INET6, &host);
  }
  if (status != ARES_SUCCESS) return fail(to_errc(status));
  // c-ares lists every PTR name among the aliases and repeats one as h_name.
  std::vector<std::string> out;
  auto add = [&](char const* n) {
    if (!n) return;
    auto name = without_trailing_dot(n);
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  };
  for (char** p = host->h_aliases; p && *p; ++p) add(*p);
  add(host->h_name);
  ares_free_hostent(host);
  if (out.empty()) return fail(errc::no_data);
  return out;
}

}  // namespace

resolver::resolver(executor ex, options opts) : impl_(std::make_shared<impl>(std::move(ex))) { impl_->open(opts); }

resolver::~resolver() { impl_->shutdown(); }

void resolver::cancel() noexcept { impl_->cancel(); }

namespace {

// The operations below are coroutines taking their arguments by value, reached through non-coroutine
// members: the arguments are copied when the member is called, not when the task is first resumed.

template <class Parse>
auto lookup(std::shared_ptr<resolver::impl> self, std::string name, int type, Parse parse)
    -> task<std::invoke_result_t<Parse, answer const&>> {
  auto ans = co_await self->query(std::move(name), type);
  if (ans.status != ARES_SUCCESS) co_return fail(to_errc(ans.status));
  co_return parse(ans);
}

task<result<std::vector<mx_record>>> lookup_mx(std::shared_ptr<resolver::impl> self, std::string name) {
  auto ans = co_await self->query(name, type_mx);
  int status = ans.status;
  if (status == ARES_SUCCESS) {
    auto records = parse_mx(ans);
    if (records || records.error() != errc::no_data) co_return records;
    status = ARES_ENODATA;  // e.g. only a CNAME to a name without MX
  }
  if (status != ARES_ENODATA) co_return fail(to_errc(status));

  // RFC 5321 5.1: no MX but an address record means the name itself is the exchanger.
  auto v4 = co_await self->query(name, type_a);
  auto v6 = co_await self->query(name, type_aaaa);
  auto has_address = [](answer const& x, int type) {
    return x.status == ARES_SUCCESS && parse_addresses(x, type).has_value();
  };
  if (has_address(v4, type_a) || has_address(v6, type_aaaa))
    co_return std::vector<mx_record>{{0, without_trailing_dot(name)}};
  for (int s : {v4.status, v6.status})
    if (s != ARES_SUCCESS && s != ARES_ENODATA && s != ARES_ENOTFOUND) co_return fail(to_errc(s));
  co_return fail(errc::no_data);
}

}  // namespace

task<result<std::vector<mx_record>>> resolver::mx(std::string_view name) {
  return lookup_mx(impl_, std::string(name));
}

task<result<std::vector<mx_record>>> resolver::mx_records(std::string_view name) {
  return lookup(impl_, std::string(name), type_mx, parse_mx);
}

task<result<std::vector<asio::ip::address>>> resolver::a(std::string_view name) {
  return lookup(impl_, std::string(name), type_a, [](answer const& x) { return parse_addresses(x, type_a); });
}

task<result<std::vector<asio::ip::address>>> resolver::aaaa(std::string_view name) {
  return lookup(impl_, std::string(name), type_aaaa, [](answer const& x) { return parse_addresses(x, type_aaaa); });
}

task<result<std::vector<std::string>>> resolver::txt(std::string_view name) {
  return lookup(impl_, std::string(name), type_txt, parse_txt);
}

task<result<std::vector<std::string>>> resolver::ptr(asio::ip::address const& addr) {
  return lookup(impl_, reverse_name(addr), type_ptr, [addr](answer const& x) { return parse_ptr(x, addr); });
}

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.dns", describe, "unknown dns error");
  return instance;
}

bool is_temporary(std::error_code ec) noexcept {
  if (ec.category() != category()) return false;
  switch (static_cast<errc>(ec.value())) {
    case errc::timeout:
    case errc::servfail:
    case errc::refused:
    case errc::other: return true;
    default: return false;
  }
}

}  // namespace mailroom::net::dns
