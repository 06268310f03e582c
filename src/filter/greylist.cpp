#include "mailroom/filter/greylist.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unistd.h>
#include <vector>

#include "filter/detail/lru_map.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/filter/rate_limit.hpp"

namespace mailroom::filter {

struct greylist::triplet {
  std::int64_t first = 0;     // first attempt (seconds since the epoch)
  std::int64_t last = 0;      // last pass
  bool promoted = false;
  std::int64_t written = -1;  // `last` as the file has it
};

struct greylist::client {
  std::uint32_t passes = 0;
  std::int64_t last = 0;
  std::int64_t written = -1;
};

namespace {

constexpr std::int64_t refresh_interval = 3600;  // a use is written at most this often
constexpr std::size_t max_address = 512;
constexpr char const* header = "# mailroom greylist 1\n";

std::error_code errno_code() { return {errno ? errno : EIO, std::generic_category()}; }

// Lowercased, cut, and with spaces, controls and '%' as %XX, so a key is three space-separated
// fields and a file line stays one line.
void append_escaped(std::string& out, std::string_view s) {
  static char const hex[] = "0123456789ABCDEF";
  for (char c : s.substr(0, max_address)) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '%') {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += text::to_lower(c);
    }
  }
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  while (out.size() < 8) {
    auto sp = line.find(' ');
    out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  return out;
}

std::optional<std::int64_t> parse_time(std::string_view s) {
  auto v = text::parse_uint(s, INT64_MAX);
  if (!v) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

std::string parent_directory(std::string const& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

smtp::reply greylist::decision::reply() const {
  if (act == action::pass) return smtp::replies::recipient_ok();
  return smtp::reply(451, {4, 7, 1},
                     "Greylisted, please try again in " + std::to_string(std::max<std::int64_t>(retry_after.count(), 1)) + " seconds");
}

greylist::greylist(options opts)
    : opts_(std::move(opts)),
      triplets_(std::make_unique<detail::lru_map<triplet>>(opts_.max_entries)),
      clients_(std::make_unique<detail::lru_map<client>>(opts_.max_clients)) {}

greylist::~greylist() {
  if (log_) std::fclose(log_);
}

result<std::unique_ptr<greylist>> greylist::open(options opts) {
  std::unique_ptr<greylist> g(new greylist(std::move(opts)));
  if (!g->opts_.path.empty()) {
    if (auto ec = g->load()) return fail(ec);
    if (auto ec = g->compact()) return fail(ec);
  }
  return g;
}

std::size_t greylist::size() const noexcept { return triplets_->size(); }
std::size_t greylist::clients() const noexcept { return clients_->size(); }

std::error_code greylist::load() {
  std::FILE* f = std::fopen(opts_.path.c_str(), "rb");
  if (!f) return errno == ENOENT ? std::error_code() : errno_code();
  std::int64_t const now_s = std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  std::vector<char> buf(opts_.max_line + 2);
  std::string line;
  bool too_long = false;
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), f)) {
    std::size_t n = std::strlen(buf.data());  // a NUL in the file cuts the line: it is then malformed
    bool const ended = n > 0 && buf[n - 1] == '\n';
    if (!too_long) line.append(buf.data(), ended ? n - 1 : n);
    if (line.size() > opts_.max_line) too_long = true;
    if (!ended) {
      if (std::feof(f)) break;  // a torn last line
      continue;
    }
    if (too_long) ++skipped_;
    else load_line(line);
    line.clear();
    too_long = false;
  }
  bool const torn = !line.empty() || too_long;
  if (torn) ++skipped_;
  bool const failed = std::ferror(f);
  std::fclose(f);
  if (failed) return errno_code();
  drop_expired(now_s);
  return {};
}

void greylist::load_line(std::string_view line) {
  if (line.empty() || line.front() == '#') return;
  auto f = split_spaces(line);
  if (f[0] == "T" && f.size() == 7 && !f[4].empty() && !f[6].empty()) {
    auto first = parse_time(f[1]);
    auto last = parse_time(f[2]);
    if (first && last && (f[3] == "0" || f[3] == "1")) {
      std::string key = std::string(f[4]) + ' ' + std::string(f[5]) + ' ' + std::string(f[6]);
      triplet& t = triplets_->upsert(key);
      t = {*first, *last, f[3] == "1", *last};
      return;
    }
  } else if (f[0] == "C" && f.size() == 4 && !f[3].empty()) {
    auto passes = text::parse_uint(f[1], UINT32_MAX);
    auto last = parse_time(f[2]);
    if (passes && last) {
      client& c = clients_->upsert(std::string(f[3]));
      c = {static_cast<std::uint32_t>(*passes), *last, *last};
      return;
    }
  }
  ++skipped_;
}

void greylist::drop_expired(std::int64_t now_s) {
  std::int64_t const window = opts_.retry_window.count();
  std::int64_t const age = opts_.max_age.count();
  triplets_->erase_if([&](std::string const&, triplet const& t) {
    return t.promoted ? now_s >= t.last + age : now_s >= t.first + window;
  });
  clients_->erase_if([&](std::string const&, client const& c) { return now_s >= c.last + age; });
}

std::error_code greylist::compact() {
  std::int64_t const now_s = std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  drop_expired(now_s);
  if (opts_.path.empty()) return {};
  std::string out = header;
  std::size_t lines = 1;
  triplets_->for_each_oldest_first([&](std::string const& key, triplet const& t) {
    out += "T " + std::to_string(t.first) + ' ' + std::to_string(t.last) + ' ' + (t.promoted ? '1' : '0') + ' ' + key + '\n';
    ++lines;
  });
  clients_->for_each_oldest_first([&](std::string const& net, client const& c) {
    out += "C " + std::to_string(c.passes) + ' ' + std::to_string(c.last) + ' ' + net + '\n';
    ++lines;
  });
  // The old file stays the log until the new one has replaced it.
  std::string const tmp = opts_.path + ".tmp";
  std::error_code ec;
  if (std::FILE* f = std::fopen(tmp.c_str(), "wb")) {
    bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    if (!ok) ec = errno_code();
    if (std::fclose(f) != 0 && !ec) ec = errno_code();
    if (!ec && std::rename(tmp.c_str(), opts_.path.c_str()) != 0) ec = errno_code();
    if (ec) std::remove(tmp.c_str());
  } else {
    ec = errno_code();
  }
  if (ec) {
    lines_ = 0;  // try again after as many lines as a compaction would wait for
    return last_error_ = ec;
  }
  if (log_) std::fclose(log_);
  lines_ = lines;
  log_ = std::fopen(opts_.path.c_str(), "ab");
  if (!log_) return last_error_ = errno_code();
  if (auto dir_ec = fsync_directory(parent_directory(opts_.path))) return last_error_ = dir_ec;
  return {};
}

void greylist::append(std::string const& line) {
  if (!log_) return;
  if (std::fputs(line.c_str(), log_) < 0 || std::fflush(log_) != 0) last_error_ = errno_code();
  ++lines_;
  if (lines_ > std::max(opts_.compact_min_lines, 2 * (triplets_->size() + clients_->size()))) compact();
}

void greylist::write_triplet(std::string const& key, triplet const& t) {
  if (opts_.path.empty()) return;
  append("T " + std::to_string(t.first) + ' ' + std::to_string(t.last) + ' ' + (t.promoted ? '1' : '0') + ' ' + key + '\n');
}

void greylist::write_client(std::string const& net, client const& c) {
  if (opts_.path.empty()) return;
  append("C " + std::to_string(c.passes) + ' ' + std::to_string(c.last) + ' ' + net + '\n');
}

void greylist::count_pass(std::string const& net, std::int64_t now_s) {
  if (opts_.auto_whitelist_after == 0) return;
  client* c = clients_->touch(net);
  if (c && now_s >= c->last + opts_.max_age.count()) *c = client{};
  if (!c) c = &clients_->upsert(net);
  bool const counting = c->passes < opts_.auto_whitelist_after;
  if (counting) ++c->passes;
  c->last = now_s;
  if (counting || now_s - c->written >= refresh_interval) {
    c->written = now_s;
    write_client(net, *c);
  }
}

greylist::decision greylist::check(asio::ip::address const& addr, std::string_view sender, std::string_view recipient) {
  std::int64_t const now_s = std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  std::string const net = client_network(addr, opts_.v4_prefix, opts_.v6_prefix);
  decision d;

  if (opts_.auto_whitelist_after > 0) {
    if (client* c = clients_->find(net); c && c->passes >= opts_.auto_whitelist_after) {
      if (now_s < c->last + opts_.max_age.count()) {
        count_pass(net, now_s);
        d.why = reason::whitelisted;
        return d;
      }
      clients_->erase(net);
    }
  }

  std::string key = net;
  key += ' ';
  append_escaped(key, sender);
  key += ' ';
  append_escaped(key, recipient);

  triplet* t = triplets_->touch(key);
  if (t && (t->promoted ? now_s >= t->last + opts_.max_age.count() : now_s >= t->first + opts_.retry_window.count())) {
    triplets_->erase(key);
    t = nullptr;
  }
  if (!t) {
    t = &triplets_->upsert(key);
    *t = {now_s, now_s, false, now_s};
    write_triplet(key, *t);
    d.act = action::tempfail;
    d.why = reason::new_triplet;
    d.retry_after = opts_.delay;
    return d;
  }
  if (!t->promoted) {
    std::int64_t const ready = t->first + opts_.delay.count();
    if (now_s < ready) {
      d.act = action::tempfail;
      d.why = reason::too_early;
      d.retry_after = std::chrono::seconds(ready - now_s);
      return d;
    }
    t->promoted = true;
    t->last = now_s;
    t->written = now_s;
    write_triplet(key, *t);
    d.why = reason::promoted;
  } else {
    t->last = now_s;
    if (now_s - t->written >= refresh_interval) {
      t->written = now_s;
      write_triplet(key, *t);
    }
    d.why = reason::known;
  }
  count_pass(net, now_s);
  return d;
}

}  // namespace mailroom::filter
