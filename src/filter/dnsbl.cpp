#include "mailroom/filter/dnsbl.hpp"

#include <algorithm>
#include <memory>

#include <asio/error.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/dns/resolver.hpp"

namespace mailroom::filter::dnsbl {

namespace {

std::string_view clean_zone(std::string_view zone) noexcept {
  while (!zone.empty() && zone.front() == '.') zone.remove_prefix(1);
  while (!zone.empty() && zone.back() == '.') zone.remove_suffix(1);
  return zone;
}

// One octet of a filter: "n", or "[item;item...]" with item "n" or "n..m".
bool parse_octet(std::string_view s, std::bitset<256>& out) {
  auto number = [](std::string_view n) { return text::parse_uint(n, 255); };
  if (s.empty()) return false;
  if (s.front() != '[') {
    auto n = number(s);
    if (!n) return false;
    out.set(*n);
    return true;
  }
  if (s.size() < 3 || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  while (true) {
    auto semi = s.find(';');
    std::string_view item = s.substr(0, semi);
    auto dots = item.find("..");
    auto lo = number(item.substr(0, dots));
    auto hi = dots == std::string_view::npos ? lo : number(item.substr(dots + 2));
    if (!lo || !hi || *lo > *hi) return false;
    for (auto v = *lo; v <= *hi; ++v) out.set(v);
    if (semi == std::string_view::npos) return true;
    s.remove_prefix(semi + 1);
  }
}

std::string sanitize(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

bool absent(std::error_code ec) noexcept { return ec == net::dns::errc::nxdomain || ec == net::dns::errc::no_data; }

// What one zone answered.
struct zone_answer {
  bool done = false;
  std::error_code error;  // a failure other than "no record"
  std::vector<asio::ip::address> addresses;
  std::string reason;
};

bool has_listing_code(std::vector<asio::ip::address> const& answers) {
  for (auto const& a : answers) {
    if (!a.is_v4()) continue;
    auto b = a.to_v4().to_bytes();
    if (b[0] == 127 && !(b[1] == 255 && b[2] == 255)) return true;
  }
  return false;
}

task<zone_answer> query_zone(std::string name, a_lookup a, txt_lookup txt, check_options opts) {
  zone_answer out;
  auto r = co_await a(name);
  if (!r) {
    if (!absent(r.error())) out.error = r.error();
  } else {
    out.addresses = std::move(*r);
    if (opts.fetch_reasons && txt && has_listing_code(out.addresses)) {
      auto t = co_await txt(name);
      if (t && !t->empty()) out.reason = sanitize(t->front(), opts.max_reason);
    }
  }
  out.done = true;
  co_return out;
}

}  // namespace

std::string query_name(asio::ip::address const& ip, std::string_view zone) {
  static char const hex[] = "0123456789abcdef";
  std::string out;
  asio::ip::address addr = ip;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(b[static_cast<std::size_t>(i)]);
      out += '.';
    }
  } else {
    auto b = addr.to_v6().to_bytes();
    for (int i = 15; i >= 0; --i) {
      unsigned char v = b[static_cast<std::size_t>(i)];
      out += hex[v & 0xf];
      out += '.';
      out += hex[v >> 4];
      out += '.';
    }
  }
  out += text::to_lower(clean_zone(zone));
  return out;
}

bool code_filter::matches(asio::ip::address_v4 const& a) const noexcept {
  auto b = a.to_bytes();
  for (std::size_t i = 0; i < 4; ++i)
    if (!octets[i].test(b[i])) return false;
  return true;
}

result<site> parse_site(std::string_view spec) {
  site out;
  if (auto star = spec.rfind('*'); star != std::string_view::npos) {
    std::string_view w = spec.substr(star + 1);
    bool negative = !w.empty() && w.front() == '-';
    if (negative) w.remove_prefix(1);
    auto n = text::parse_uint(w, 1000000);
    if (!n) return fail(errc::invalid_argument);
    out.weight = negative ? -static_cast<int>(*n) : static_cast<int>(*n);
    spec = spec.substr(0, star);
  }
  if (auto eq = spec.find('='); eq != std::string_view::npos) {
    std::string_view f = spec.substr(eq + 1);
    code_filter cf;
    for (std::size_t i = 0; i < 4; ++i) {
      auto dot = i < 3 ? f.find('.') : std::string_view::npos;
      if (i < 3 && dot == std::string_view::npos) return fail(errc::invalid_argument);
      // A dot inside brackets belongs to a range ("[2..11]").
      if (!f.empty() && f.front() == '[') {
        auto close = f.find(']');
        if (close == std::string_view::npos) return fail(errc::invalid_argument);
        dot = i < 3 ? f.find('.', close) : std::string_view::npos;
        if (i < 3 && dot != close + 1) return fail(errc::invalid_argument);
      }
      if (!parse_octet(f.substr(0, dot), cf.octets[i])) return fail(errc::invalid_argument);
      f.remove_prefix(dot == std::string_view::npos ? f.size() : dot + 1);
    }
    out.accept = cf;
    spec = spec.substr(0, eq);
  }
  spec = clean_zone(spec);
  if (spec.empty() || spec.size() > 253) return fail(errc::invalid_argument);
  for (char c : spec)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return fail(errc::invalid_argument);
  out.zone = text::to_lower(spec);
  return out;
}

std::string_view to_string(status s) noexcept {
  switch (s) {
    case status::not_listed: return "not_listed";
    case status::listed: return "listed";
    case status::unknown: return "unknown";
    case status::list_error: return "list_error";
  }
  return "unknown";
}

interpretation interpret(std::vector<asio::ip::address> const& answers, site const& s) {
  interpretation out;
  bool list_error = false;
  for (auto const& a : answers) {
    if (!a.is_v4()) continue;
    auto v4 = a.to_v4();
    auto b = v4.to_bytes();
    if (b[0] != 127) continue;
    if (b[1] == 255 && b[2] == 255) {
      list_error = true;
      continue;
    }
    if (!s.accept || s.accept->matches(v4)) out.codes.push_back(v4);
  }
  out.state = !out.codes.empty() ? status::listed : list_error ? status::list_error : status::not_listed;
  return out;
}

site_result const* report::first_listed() const noexcept {
  for (auto const& s : sites)
    if (s.state == status::listed && s.weight > 0) return &s;
  return nullptr;
}

task<report> check(asio::ip::address ip, std::vector<site> sites, a_lookup a, txt_lookup txt, check_options opts) {
  report out;
  out.sites.resize(sites.size());
  std::size_t const queried = std::min(sites.size(), opts.max_sites);
  // Distinct zones, each queried once.
  std::vector<std::string> zones;
  std::vector<std::size_t> zone_of(queried);
  for (std::size_t i = 0; i < queried; ++i) {
    std::size_t z = 0;
    while (z < zones.size() && zones[z] != sites[i].zone) ++z;
    if (z == zones.size()) zones.push_back(sites[i].zone);
    zone_of[i] = z;
  }

  struct shared {
    explicit shared(executor ex) : timer(ex) {}
    asio::steady_timer timer;
    std::vector<zone_answer> answers;
    std::size_t pending = 0;
    bool finished = false;
  };
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<shared>(ex);
  st->answers.resize(zones.size());
  st->pending = zones.size();
  if (opts.deadline.count() > 0) st->timer.expires_after(opts.deadline);
  else st->timer.expires_at(asio::steady_timer::time_point::max());
  for (std::size_t z = 0; z < zones.size(); ++z) {
    auto name = query_name(ip, zones[z]);
    auto on_done = [st, z](std::exception_ptr e, zone_answer r) {
      if (st->finished) return;
      if (!e) st->answers[z] = std::move(r);
      else st->answers[z].error = make_error_code(errc::io_error);
      if (--st->pending == 0) st->timer.cancel();
    };
    asio::co_spawn(ex, query_zone(std::move(name), a, txt, opts), std::move(on_done));
  }
  if (st->pending > 0) {
    auto wait = st->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    co_await std::move(wait);
  }
  st->finished = true;

  for (std::size_t i = 0; i < out.sites.size(); ++i) {
    site_result& r = out.sites[i];
    r.zone = sites[i].zone;
    if (i >= queried) {
      r.error = make_error_code(errc::limit_exceeded);
      continue;
    }
    zone_answer const& ans = st->answers[zone_of[i]];
    if (!ans.done) {
      r.error = make_error_code(asio::error::timed_out);
      continue;
    }
    if (ans.error) {
      r.error = ans.error;
      continue;
    }
    auto in = interpret(ans.addresses, sites[i]);
    r.state = in.state;
    r.codes = std::move(in.codes);
    if (r.state == status::listed) {
      r.weight = sites[i].weight;
      r.reason = ans.reason;
      out.score += r.weight;
    }
  }
  out.listed = out.score >= opts.threshold;
  co_return out;
}

}  // namespace mailroom::filter::dnsbl
