#include "mailroom/filter/dns.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/text.hpp"

namespace mailroom::filter {

namespace dnserr = net::dns;

// resolver_dns: each lookup hands its copied argument straight to the resolver, which copies it
// again when called, so nothing here outlives the call.

task<result<std::vector<std::string>>> resolver_dns::do_txt(std::string name) { return resolver_->txt(name); }

task<result<std::vector<asio::ip::address>>> resolver_dns::do_a(std::string name) { return resolver_->a(name); }

task<result<std::vector<asio::ip::address>>> resolver_dns::do_aaaa(std::string name) {
  return resolver_->aaaa(name);
}

task<result<std::vector<net::dns::mx_record>>> resolver_dns::do_mx(std::string name) {
  return resolver_->mx_records(name);
}

task<result<std::vector<std::string>>> resolver_dns::do_ptr(asio::ip::address addr) { return resolver_->ptr(addr); }

// static_dns

std::string static_dns::normalise(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return text::to_lower(name);
}

std::optional<asio::ip::address> static_dns::parse_reverse_name(std::string_view name) {
  std::string const n = normalise(name);
  std::vector<std::string_view> labels;
  for (std::size_t start = 0;;) {
    auto dot = std::min(n.find('.', start), n.size());
    labels.emplace_back(std::string_view(n).substr(start, dot - start));
    if (dot == n.size()) break;
    start = dot + 1;
  }
  auto arpa = [&](std::string_view zone, std::size_t count) {
    return labels.size() == count + 2 && labels[count] == zone && labels[count + 1] == "arpa";
  };
  if (arpa("in-addr", 4)) {
    asio::ip::address_v4::bytes_type b{};
    for (std::size_t i = 0; i < 4; ++i) {
      auto v = text::parse_uint(labels[3 - i], 255);
      if (!v || labels[3 - i].size() > 3) return std::nullopt;
      b[i] = static_cast<unsigned char>(*v);
    }
    return asio::ip::address(asio::ip::address_v4(b));
  }
  if (arpa("ip6", 32)) {
    asio::ip::address_v6::bytes_type b{};
    for (std::size_t i = 0; i < 32; ++i) {
      auto label = labels[31 - i];  // most significant nibble last
      if (label.size() != 1 || !std::isxdigit(static_cast<unsigned char>(label[0]))) return std::nullopt;
      int nibble = label[0] <= '9' ? label[0] - '0' : label[0] - 'a' + 10;
      b[i / 2] = static_cast<unsigned char>(b[i / 2] | (i % 2 == 0 ? nibble << 4 : nibble));
    }
    return asio::ip::address(asio::ip::address_v6(b));
  }
  return std::nullopt;
}

std::string static_dns::key(std::string_view name) {
  if (!name.empty() && name.front() == '#') return std::string(name);
  if (auto addr = parse_reverse_name(name)) return "#" + addr->to_string();
  return normalise(name);
}

static_dns& static_dns::add_txt(std::string_view name, std::string_view text) {
  at(name).txt.emplace_back(text);
  return *this;
}

static_dns& static_dns::add_address(std::string_view name, asio::ip::address const& addr) {
  auto& n = at(name);
  (addr.is_v4() ? n.a : n.aaaa).push_back(addr);
  return *this;
}

static_dns& static_dns::add_address(std::string_view name, std::string_view addr) {
  std::error_code ec;
  auto parsed = asio::ip::make_address(std::string(addr), ec);
  if (ec) throw std::invalid_argument("static_dns: not an IP address: " + std::string(addr));
  return add_address(name, parsed);
}

static_dns& static_dns::add_mx(std::string_view name, std::uint16_t preference, std::string_view host) {
  auto& n = at(name);
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  n.mx.push_back({preference, std::string(host)});
  std::stable_sort(n.mx.begin(), n.mx.end(), [](auto const& x, auto const& y) { return x.preference < y.preference; });
  return *this;
}

static_dns& static_dns::add_ptr(asio::ip::address const& addr, std::string_view target) {
  if (!target.empty() && target.back() == '.') target.remove_suffix(1);
  at("#" + addr.to_string()).ptr.emplace_back(target);
  return *this;
}

static_dns& static_dns::add_ptr(std::string_view reverse_name, std::string_view target) {
  auto addr = parse_reverse_name(reverse_name);
  if (!addr) throw std::invalid_argument("static_dns: not a reverse-zone name: " + std::string(reverse_name));
  return add_ptr(*addr, target);
}

static_dns& static_dns::add_cname(std::string_view name, std::string_view target) {
  at(name).cname = normalise(target);
  return *this;
}

static_dns& static_dns::add_name(std::string_view name) {
  at(name);
  return *this;
}

static_dns& static_dns::set_error(std::string_view name, rr type, std::error_code ec) {
  at(name).errors[type] = ec;
  return *this;
}

static_dns& static_dns::set_error(std::string_view name, std::error_code ec) {
  at(name).any_error = ec;
  return *this;
}

std::size_t static_dns::queries(rr type) const noexcept {
  return static_cast<std::size_t>(std::count_if(log_.begin(), log_.end(), [type](query const& q) { return q.type == type; }));
}

std::size_t static_dns::queries(rr type, std::string_view name) const {
  auto const n = key(name);
  return static_cast<std::size_t>(
      std::count_if(log_.begin(), log_.end(), [&](query const& q) { return q.type == type && q.name == n; }));
}

namespace {

bool has_records(auto const& node, static_dns::rr type) {
  using rr = static_dns::rr;
  switch (type) {
    case rr::a: return !node.a.empty();
    case rr::aaaa: return !node.aaaa.empty();
    case rr::txt: return !node.txt.empty();
    case rr::mx: return !node.mx.empty();
    case rr::ptr: return !node.ptr.empty();
    case rr::cname: return !node.cname.empty();
  }
  return false;
}

}  // namespace

result<static_dns::node const*> static_dns::find(rr type, std::string_view raw) {
  std::string name = key(raw);
  log_.push_back({type, name});
  if (name.empty() || name.size() > 253) return fail(dnserr::errc::bad_name);
  for (int links = 0; links <= 8; ++links) {
    auto it = zone_.find(name);
    if (it == zone_.end()) return fail(dnserr::errc::nxdomain);
    node const& n = it->second;
    if (auto e = n.errors.find(type); e != n.errors.end()) return fail(e->second);
    if (n.any_error) return fail(n.any_error);
    if (has_records(n, type)) return &n;
    if (n.cname.empty() || type == rr::cname) return fail(dnserr::errc::no_data);
    name = key(n.cname);
  }
  return fail(dnserr::errc::servfail);  // a CNAME loop or an overlong chain
}

namespace {

// The answer to a query already resolved by find(): a copy of one record set, or the error.
template <class T, class Node>
task<result<T>> answer(result<Node const*> found, T Node::*records, std::chrono::milliseconds delay) {
  if (delay.count() > 0) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, delay);
    std::error_code ec;  // cancelled: answer at once
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (!found) co_return fail(found.error());
  co_return (*found)->*records;
}

}  // namespace

task<result<std::vector<std::string>>> static_dns::do_txt(std::string name) {
  return answer(find(rr::txt, name), &node::txt, delay_);
}

task<result<std::vector<asio::ip::address>>> static_dns::do_a(std::string name) {
  return answer(find(rr::a, name), &node::a, delay_);
}

task<result<std::vector<asio::ip::address>>> static_dns::do_aaaa(std::string name) {
  return answer(find(rr::aaaa, name), &node::aaaa, delay_);
}

task<result<std::vector<net::dns::mx_record>>> static_dns::do_mx(std::string name) {
  return answer(find(rr::mx, name), &node::mx, delay_);
}

task<result<std::vector<std::string>>> static_dns::do_ptr(asio::ip::address addr) {
  return answer(find(rr::ptr, "#" + addr.to_string()), &node::ptr, delay_);
}

}  // namespace mailroom::filter
