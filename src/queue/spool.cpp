#include "mailroom/queue/spool.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::queue {

namespace {

constexpr std::string_view magic = "MAILROOM-QUEUE 1\n";
constexpr std::string_view footer_tag = "\nMAILROOM-QUEUE-END ";
constexpr std::size_t footer_size = footer_tag.size() + 20 + 1;

std::error_code last_error() { return {errno, std::system_category()}; }

// ---- record format ---------------------------------------------------------------------------

void put(std::string& out, char tag, std::string_view value) {
  out += tag;
  out += ' ';
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += '\n';
}

std::string body_name(smtp::body_type b) {
  switch (b) {
    case smtp::body_type::seven_bit: return "7BIT";
    case smtp::body_type::eight_bit_mime: return "8BITMIME";
    case smtp::body_type::binary_mime: return "BINARYMIME";
    case smtp::body_type::unspecified: break;
  }
  return "";
}

struct reader {
  std::string_view data;
  std::size_t pos = 0;

  // One "<tag> <len>:<bytes>\n" record; false at malformed input.
  bool next(char& tag, std::string_view& value) {
    if (data.size() - pos < 4) return false;
    tag = data[pos];
    if (data[pos + 1] != ' ') return false;
    std::size_t p = pos + 2;
    std::size_t digits = 0;
    while (p < data.size() && data[p] >= '0' && data[p] <= '9' && digits < 7) ++p, ++digits;
    if (digits == 0 || p >= data.size() || data[p] != ':') return false;
    auto len = text::parse_uint(data.substr(pos + 2, digits), max_record);
    if (!len) return false;
    ++p;
    if (data.size() - p < *len + 1 || data[p + *len] != '\n') return false;
    value = data.substr(p, *len);
    pos = p + *len + 1;
    return true;
  }
};

// All recipients' state texts together stay under this, so that a message with many recipients
// keeps an envelope that read() accepts (it reads at most 16 MiB of header).
constexpr std::size_t state_budget = 4 * 1024 * 1024;

// At most `limit` octets, not ending inside a UTF-8 sequence.
std::string_view cut(std::string_view s, std::size_t limit = max_state_text) {
  if (s.size() <= limit) return s;
  auto n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// "ddd x.y.z text": always three parts, 0.0.0 when the reply had no enhanced code.
std::string encode_reply(smtp::reply const& r, std::size_t limit = max_state_text) {
  char head[32];
  std::snprintf(head, sizeof head, "%03d %u.%u.%u ", r.code >= 100 && r.code <= 999 ? r.code : 451, r.enhanced[0],
                r.enhanced[1], r.enhanced[2]);
  return head + std::string(cut(r.text, limit));
}

std::optional<smtp::reply> decode_reply(std::string_view v) {
  if (v.size() < 10 || v[3] != ' ') return std::nullopt;
  auto code = text::parse_uint(v.substr(0, 3), 999);
  if (!code || *code < 100) return std::nullopt;
  auto sp = v.find(' ', 4);
  if (sp == std::string_view::npos) return std::nullopt;
  auto enh = v.substr(4, sp - 4);
  smtp::reply r;
  r.code = static_cast<int>(*code);
  for (int i = 0; i < 3; ++i) {
    auto dot = i < 2 ? enh.find('.') : enh.size();
    if (dot == std::string_view::npos) return std::nullopt;
    auto n = text::parse_uint(enh.substr(0, dot), 999);
    if (!n) return std::nullopt;
    r.enhanced[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(*n);
    enh.remove_prefix(std::min(enh.size(), dot + 1));
  }
  r.text = std::string(v.substr(sp + 1));
  return r;
}

result<address> decode_address(std::string_view s) {
  if (s.empty()) return address{};
  std::string bracketed = "<" + std::string(s) + ">";
  return parse_path(bracketed, {.allow_utf8 = true, .allow_null = true, .allow_postmaster = true});
}

}  // namespace

std::string_view to_string(state s) noexcept {
  switch (s) {
    case state::incoming: return "incoming";
    case state::active: return "active";
    case state::deferred: return "deferred";
    case state::hold: return "hold";
    case state::corrupt: return "corrupt";
  }
  return "corrupt";
}

std::string encode_envelope(envelope const& env) {
  std::string out(magic);
  put(out, 'I', env.id);
  put(out, 'T', std::to_string(env.arrival));
  put(out, 'F', env.sender.to_string());
  if (env.params.size) put(out, 'P', "SIZE=" + std::to_string(*env.params.size));
  if (auto b = body_name(env.params.body); !b.empty()) put(out, 'P', "BODY=" + b);
  if (env.params.smtputf8) put(out, 'P', "SMTPUTF8");
  if (env.params.ret != smtp::dsn_ret::unspecified)
    put(out, 'P', env.params.ret == smtp::dsn_ret::full ? "RET=FULL" : "RET=HDRS");
  if (!env.params.envid.empty()) put(out, 'P', "ENVID=" + env.params.envid);
  if (env.params.auth) put(out, 'P', "AUTH=" + *env.params.auth);
  put(out, 'C', env.client);
  put(out, 'H', env.helo);
  put(out, 'X', env.protocol);
  put(out, 'A', env.auth_user);
  if (env.attempts) put(out, 'K', std::to_string(env.attempts));
  if (env.delay_warned > 0) put(out, 'w', std::to_string(env.delay_warned));
  auto const text_limit =
      std::clamp<std::size_t>(state_budget / std::max<std::size_t>(env.recipients.size(), 1), 128, max_state_text);
  for (auto const& r : env.recipients) {
    put(out, 'R', r.addr.to_string());
    if (r.params.notify) put(out, 'N', std::to_string(r.params.notify));
    if (!r.params.orcpt.empty()) put(out, 'O', r.params.orcpt_type + ";" + r.params.orcpt);
    if (r.last_attempt > 0) put(out, 'a', std::to_string(r.last_attempt));
    if (r.last_reply) put(out, 'r', encode_reply(*r.last_reply, text_limit));
    if (!r.last_error.empty()) put(out, 'e', cut(r.last_error, text_limit));
  }
  put(out, 'E', "");
  return out;
}

result<envelope> decode_envelope(std::string_view data, std::size_t* consumed) {
  auto bad = [] { return fail(errc::invalid_argument); };
  if (data.substr(0, magic.size()) != magic) return bad();
  reader rd{data, magic.size()};
  envelope env;
  bool have_id = false, have_from = false;
  char tag;
  std::string_view v;
  for (;;) {
    if (!rd.next(tag, v)) return bad();
    switch (tag) {
      case 'I':
        if (v.empty() || v.find_first_of("/.") != std::string_view::npos) return bad();
        env.id = std::string(v);
        have_id = true;
        break;
      case 'T': {
        auto t = text::parse_uint(v);
        if (!t) return bad();
        env.arrival = static_cast<std::int64_t>(*t);
        break;
      }
      case 'F': {
        auto a = decode_address(v);
        if (!a) return bad();
        env.sender = std::move(*a);
        have_from = true;
        break;
      }
      case 'P': {
        auto eq = v.find('=');
        auto key = v.substr(0, eq);
        auto val = eq == std::string_view::npos ? std::string_view{} : v.substr(eq + 1);
        if (key == "SIZE") {
          auto n = text::parse_uint(val);
          if (!n) return bad();
          env.params.size = *n;
        } else if (key == "BODY") {
          env.params.body = val == "7BIT"         ? smtp::body_type::seven_bit
                            : val == "8BITMIME"   ? smtp::body_type::eight_bit_mime
                            : val == "BINARYMIME" ? smtp::body_type::binary_mime
                                                  : smtp::body_type::unspecified;
        } else if (key == "SMTPUTF8") {
          env.params.smtputf8 = true;
        } else if (key == "RET") {
          env.params.ret = val == "FULL" ? smtp::dsn_ret::full : smtp::dsn_ret::headers;
        } else if (key == "ENVID") {
          env.params.envid = std::string(val);
        } else if (key == "AUTH") {
          env.params.auth = std::string(val);
        } else {
          return bad();
        }
        break;
      }
      case 'C': env.client = std::string(v); break;
      case 'H': env.helo = std::string(v); break;
      case 'X': env.protocol = std::string(v); break;
      case 'A': env.auth_user = std::string(v); break;
      case 'K': {
        auto n = text::parse_uint(v, UINT32_MAX);
        if (!n) return bad();
        env.attempts = static_cast<std::uint32_t>(*n);
        break;
      }
      case 'R': {
        if (env.recipients.size() >= max_recipients) return bad();
        auto a = decode_address(v);
        if (!a || a->is_null()) return bad();
        env.recipients.push_back({std::move(*a), {}});
        break;
      }
      case 'N': {
        auto n = text::parse_uint(v, 15);
        if (!n || env.recipients.empty()) return bad();
        env.recipients.back().params.notify = static_cast<std::uint8_t>(*n);
        break;
      }
      case 'O': {
        auto semi = v.find(';');
        if (semi == std::string_view::npos || env.recipients.empty()) return bad();
        env.recipients.back().params.orcpt_type = std::string(v.substr(0, semi));
        env.recipients.back().params.orcpt = std::string(v.substr(semi + 1));
        break;
      }
      case 'w': {
        auto t = text::parse_uint(v, INT64_MAX);
        if (!t) return bad();
        env.delay_warned = static_cast<std::int64_t>(*t);
        break;
      }
      case 'a': {
        auto t = text::parse_uint(v, INT64_MAX);
        if (!t || env.recipients.empty()) return bad();
        env.recipients.back().last_attempt = static_cast<std::int64_t>(*t);
        break;
      }
      case 'r': {
        auto r = decode_reply(v);
        if (!r || env.recipients.empty()) return bad();
        env.recipients.back().last_reply = std::move(*r);
        break;
      }
      case 'e':
        if (env.recipients.empty()) return bad();
        env.recipients.back().last_error = std::string(v);
        break;
      case 'E':
        if (!v.empty() || !have_id || !have_from || env.recipients.empty()) return bad();
        if (consumed) *consumed = rd.pos;
        return env;
      default:
        if (tag >= 'a' && tag <= 'z') break;  // optional state of a later version
        return bad();
    }
  }
}

std::string recipient::last_outcome() const {
  std::string out;
  if (last_reply) {
    out = encode_reply(*last_reply);
    if (out.compare(4, 6, "0.0.0 ") == 0) out.erase(4, 6);
    for (auto& c : out)
      if (c == '\n') c = ' ';
  } else {
    out = last_error;
  }
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

// ---- the spool -------------------------------------------------------------------------------

spool::spool(std::string root, blocking_pool& pool, log::logger logger)
    : root_(std::move(root)),
      pool_(pool),
      log_(logger.with_component("queue")),
      incoming_sync_(root_ + "/incoming", pool) {}

result<std::shared_ptr<spool>> spool::open(std::string root, blocking_pool& pool, log::logger logger) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (auto ec = create_directories(root, {"tmp", "incoming", "active", "deferred", "hold", "corrupt"}); ec)
    return fail(ec);
  return std::make_shared<spool>(std::move(root), pool, std::move(logger));
}

std::string spool::path(state s, std::string const& id) const {
  return root_ + "/" + std::string(to_string(s)) + "/" + id;
}

std::string spool::new_id() {
  // Sortable by arrival: microseconds since the epoch, then a per-process counter, then the pid.
  static std::atomic<std::uint32_t> counter{0};
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%013llX%05X%X", static_cast<unsigned long long>(us),
                counter.fetch_add(1, std::memory_order_relaxed) & 0xFFFFFu, static_cast<unsigned>(::getpid()));
  return buf;
}

result<std::vector<std::string>> spool::list(state s) const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (auto const& e : std::filesystem::directory_iterator(root_ + "/" + std::string(to_string(s)), ec))
    if (e.is_regular_file()) ids.push_back(e.path().filename().string());
  if (ec) return fail(ec);
  std::sort(ids.begin(), ids.end());
  return ids;
}

result<queued_message> spool::read(state s, std::string const& id) {
  queued_message m;
  m.path = path(s, id);
  auto quarantine = [&](char const* why) -> result<queued_message> {
    log_.error("corrupt queue file moved to corrupt/", {{"queue_id", id}, {"reason", why}});
    if (s != state::corrupt) ::rename(m.path.c_str(), path(state::corrupt, id).c_str());
    return fail(errc::invalid_argument);
  };
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(last_error());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto ec = last_error();
    ::close(fd);
    return fail(ec);
  }
  auto size = static_cast<std::uint64_t>(st.st_size);
  // The header: 64 KiB usually holds it; a long recipient list grows the read, up to 16 MiB.
  std::size_t header_len = 0;
  result<envelope> env = fail(errc::invalid_argument);
  std::string head;
  for (std::uint64_t want = 64 * 1024;; want *= 4) {
    head.resize(static_cast<std::size_t>(std::min<std::uint64_t>(size, want)));
    auto n = ::pread(fd, head.data(), head.size(), 0);
    if (n < 0 || static_cast<std::size_t>(n) != head.size()) {
      ::close(fd);
      return fail(std::make_error_code(std::errc::io_error));
    }
    env = decode_envelope(head, &header_len);
    if (env || head.size() == size || want >= (16u << 20)) break;
  }
  char foot[footer_size];
  auto fn = size >= footer_size ? ::pread(fd, foot, footer_size, static_cast<off_t>(size - footer_size)) : -1;
  ::close(fd);
  if (!env) return quarantine("envelope does not parse");
  if (fn != static_cast<ssize_t>(footer_size) || std::string_view(foot, footer_tag.size()) != footer_tag ||
      foot[footer_size - 1] != '\n')
    return quarantine("footer missing (truncated file)");
  auto body_size = text::parse_uint(std::string_view(foot + footer_tag.size(), 20));
  if (!body_size || header_len + *body_size + footer_size != size) return quarantine("body length mismatch");
  if (env->id != id) return quarantine("queue id does not match the file name");
  m.env = std::move(*env);
  m.body_offset = header_len;
  m.body_size = *body_size;
  return m;
}

result<std::string> spool::read_body(queued_message const& m) const {
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(last_error());
  std::string body(static_cast<std::size_t>(m.body_size), '\0');
  auto n = ::pread(fd, body.data(), body.size(), static_cast<off_t>(m.body_offset));
  ::close(fd);
  if (n < 0 || static_cast<std::uint64_t>(n) != m.body_size) return fail(std::make_error_code(std::errc::io_error));
  return body;
}

task<result<void>> spool::move(std::string const& id, state from, state to) {
  auto src = path(from, id), dst = path(to, id);
  auto dir = root_ + "/" + std::string(to_string(to));
  auto job = [src, dst, dir]() -> std::error_code {
    if (::rename(src.c_str(), dst.c_str()) != 0) return last_error();
    return fsync_directory(dir);
  };
  if (auto ec = co_await pool_.offload(std::move(job)); ec) co_return fail(ec);
  co_return result<void>{};
}

task<result<void>> spool::rewrite(state s, queued_message const& m, envelope const& env) {
  auto header = encode_envelope(env);
  auto tmp = root_ + "/tmp/" + env.id + ".rewrite";
  auto dst = path(s, env.id);
  auto dir = root_ + "/" + std::string(to_string(s));
  auto src = m.path;
  auto offset = m.body_offset;
  auto length = m.body_size;
  // The body and footer are copied as they are; the new file replaces the old one atomically.
  auto job = [header, tmp, dst, dir, src, offset, length]() -> std::error_code {
    int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return last_error();
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
      auto ec = last_error();
      ::close(in);
      return ec;
    }
    auto ec = write_all(out, header);
    std::string buf(64 * 1024, '\0');
    std::uint64_t left = length + footer_size;
    auto pos = static_cast<off_t>(offset);
    while (!ec && left > 0) {
      auto n = ::pread(in, buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size())), pos);
      if (n <= 0) {
        ec = n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
        break;
      }
      ec = write_all(out, std::string_view(buf.data(), static_cast<std::size_t>(n)));
      left -= static_cast<std::uint64_t>(n);
      pos += n;
    }
    if (!ec && ::fdatasync(out) != 0) ec = last_error();
    ::close(out);
    ::close(in);
    if (!ec && ::rename(tmp.c_str(), dst.c_str()) != 0) ec = last_error();
    if (!ec) ec = fsync_directory(dir);
    if (ec) ::unlink(tmp.c_str());
    return ec;
  };
  if (auto ec = co_await pool_.offload(std::move(job)); ec) co_return fail(ec);
  co_return result<void>{};
}

task<result<void>> spool::defer_until(std::string const& id, std::chrono::system_clock::time_point when) {
  auto p = path(state::deferred, id);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (::utimensat(AT_FDCWD, p.c_str(), times, 0) != 0) co_return fail(last_error());
  co_return result<void>{};
}

result<std::vector<std::string>> spool::due(std::chrono::system_clock::time_point now) const {
  auto ids = list(state::deferred);
  if (!ids) return ids;
  std::vector<std::string> out;
  auto now_s = std::chrono::system_clock::to_time_t(now);
  for (auto const& id : *ids) {
    struct stat st {};
    if (::stat(path(state::deferred, id).c_str(), &st) == 0 && st.st_mtim.tv_sec <= now_s) out.push_back(id);
  }
  return out;
}

task<result<std::size_t>> spool::recover() {
  std::error_code ec;
  for (auto const& e : std::filesystem::directory_iterator(root_ + "/tmp", ec)) {
    log_.notice("removing a partial queue file left by a crash", {{"file", e.path().filename().string()}});
    std::filesystem::remove(e.path(), ec);
  }
  auto active = list(state::active);
  if (!active) co_return fail(active.error());
  for (auto const& id : *active) {
    if (auto r = co_await move(id, state::active, state::incoming); !r) co_return fail(r.error());
    log_.info("delivery interrupted; back to incoming", {{"queue_id", id}});
  }
  co_return active->size();
}

// ---- a delivery into the spool ---------------------------------------------------------------

namespace {

class spool_delivery final : public delivery::delivery {
 public:
  spool_delivery(std::shared_ptr<spool> sp, envelope env, int fd, std::string tmp)
      : spool_(std::move(sp)), env_(std::move(env)), fd_(fd), tmp_(std::move(tmp)) {}
  ~spool_delivery() override { abort(); }

  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const& params) override {
    if (env_.recipients.size() >= max_recipients) co_return smtp::replies::too_many_recipients();
    env_.recipients.push_back({to, params});
    co_return std::nullopt;
  }

  task<result<void>> body(smtp::message_source& src) override {
    if (env_.recipients.empty()) co_return fail(errc::invalid_argument);
    buffer_ = encode_envelope(env_);
    for (;;) {
      auto piece = co_await src.read();
      if (!piece) co_return fail(piece.error());
      if (piece->empty()) break;
      body_size_ += piece->size();
      buffer_.append(piece->data(), piece->size());
      if (buffer_.size() >= 64 * 1024)
        if (auto r = flush(); !r) co_return r;
    }
    char foot[footer_size + 1];
    std::snprintf(foot, sizeof foot, "%.*s%020llu\n", static_cast<int>(footer_tag.size()), footer_tag.data(),
                  static_cast<unsigned long long>(body_size_));
    buffer_.append(foot, footer_size);
    auto r = flush();
    body_done_ = static_cast<bool>(r);
    co_return r;
  }

  task<result<std::string>> commit() override {
    if (fd_ < 0 || !body_done_) co_return fail(errc::invalid_argument);
    if (auto r = flush(); !r) co_return fail(r.error());
    auto dst = spool_->path(hold_ ? state::hold : state::incoming, env_.id);
    auto publish = [fd = fd_, src = tmp_, dst]() -> std::error_code {
      if (::fdatasync(fd) != 0) return last_error();
      if (::rename(src.c_str(), dst.c_str()) != 0) return last_error();
      return {};
    };
    auto ec = co_await spool_->pool().offload(std::move(publish));
    if (ec) co_return fail(ec);
    ::close(fd_);
    fd_ = -1;
    if (hold_) {
      // Rare (quarantine): a plain directory fsync rather than the batched one for incoming/.
      auto dir = spool_->root() + "/hold";
      auto dsync = [dir]() -> std::error_code { return fsync_directory(dir); };
      if (auto dec = co_await spool_->pool().offload(std::move(dsync)); dec) co_return fail(dec);
      spool_->logger().notice("quarantined (held)", {{"queue_id", env_.id}, {"from", env_.sender.to_string()}});
      co_return env_.id;
    }
    if (auto dec = co_await spool_->incoming_sync().sync(); dec) co_return fail(dec);
    spool_->notify_queued();
    spool_->logger().info("queued", {{"queue_id", env_.id},
                                     {"from", env_.sender.to_string()},
                                     {"nrcpt", std::to_string(env_.recipients.size())},
                                     {"size", std::to_string(body_size_)}});
    co_return env_.id;
  }

  bool hold() override {
    hold_ = true;
    return true;
  }

  void abort() noexcept override {
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
  }

 private:
  result<void> flush() {
    if (auto ec = write_all(fd_, buffer_); ec) return fail(ec);
    buffer_.clear();
    return {};
  }

  std::shared_ptr<spool> spool_;
  envelope env_;
  int fd_;
  std::string tmp_;
  std::string buffer_;
  std::uint64_t body_size_ = 0;
  bool body_done_ = false;
  bool hold_ = false;
};

}  // namespace

task<result<std::unique_ptr<delivery::delivery>>> spool::start(delivery::message_context const& ctx,
                                                               address const& from) {
  envelope env;
  env.id = new_id();
  env.arrival = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  env.sender = from;
  env.params = ctx.params;
  env.client = ctx.client.address().to_string() + ":" + std::to_string(ctx.client.port());
  env.helo = ctx.helo;
  env.protocol = ctx.protocol;
  env.auth_user = ctx.auth_user;
  auto tmp = root_ + "/tmp/" + env.id;
  // RFC 1870 6.1: a message declared larger than the space left is refused now, temporarily
  // (452 4.3.1 at MAIL), rather than after the client has sent it all.
  struct statvfs vfs {};
  if (::statvfs((root_ + "/tmp").c_str(), &vfs) == 0) {
    auto free_bytes = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < min_free_space || free_bytes - min_free_space < ctx.params.size.value_or(0))
      co_return fail(std::make_error_code(std::errc::no_space_on_device));
  }
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) co_return fail(last_error());
  co_return std::make_unique<spool_delivery>(shared_from_this(), std::move(env), fd, std::move(tmp));
}

}  // namespace mailroom::queue
