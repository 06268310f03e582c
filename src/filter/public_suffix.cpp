#include "mailroom/filter/public_suffix.hpp"

#include <cerrno>
#include <cstdio>
#include <vector>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::filter {

namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Lowercases name, drops one trailing dot, and records where each label starts. False for a name
// that cannot be a domain.
bool split_name(std::string_view name, std::size_t max_labels, std::string& out, std::vector<std::size_t>& starts) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return false;
  out = text::to_lower(name);
  starts.clear();
  std::size_t start = 0;
  for (;;) {
    auto dot = out.find('.', start);
    std::size_t end = dot == std::string::npos ? out.size() : dot;
    if (end == start) return false;  // empty label
    if (starts.size() == max_labels) return false;
    starts.push_back(start);
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

result<public_suffix_list> public_suffix_list::parse(std::string_view text, psl_limits limits) {
  if (text.size() > limits.max_file_size) return fail(errc::limit_exceeded);
  public_suffix_list out;
  out.max_labels_ = limits.max_labels;
  int section = 0;  // 0 before any marker (taken as ICANN), 1 ICANN, 2 PRIVATE
  std::string key;
  std::vector<std::size_t> starts;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.size() > limits.max_line) {
      ++out.skipped_;
      continue;
    }
    std::size_t b = 0;
    while (b < line.size() && is_space(line[b])) ++b;
    line.remove_prefix(b);
    if (line.empty()) continue;
    if (line.starts_with("//")) {
      if (line.find("===BEGIN ICANN DOMAINS===") != std::string_view::npos) section = 1;
      else if (line.find("===BEGIN PRIVATE DOMAINS===") != std::string_view::npos) section = 2;
      else if (line.find("===END ") != std::string_view::npos) section = 0;
      continue;
    }
    std::size_t e = 0;
    while (e < line.size() && !is_space(line[e])) ++e;
    std::string_view rule = line.substr(0, e);
    std::uint8_t kind = normal_icann;
    if (rule.starts_with("!")) {
      kind = exception_icann;
      rule.remove_prefix(1);
    } else if (rule.starts_with("*.")) {
      kind = wildcard_icann;
      rule.remove_prefix(2);
    }
    // A rule must be a plain name now (no further wildcard, no trailing dot, no empty label); an
    // exception needs two labels (its public suffix is the rest).
    if (rule.empty() || rule.back() == '.' || rule.find('*') != std::string_view::npos || rule.find('!') != std::string_view::npos ||
        !split_name(rule, limits.max_labels, key, starts) || (kind == exception_icann && starts.size() < 2)) {
      ++out.skipped_;
      continue;
    }
    if (section == 2) kind = static_cast<std::uint8_t>(kind << 1);  // the _private bit follows each _icann bit
    auto [it, inserted] = out.rules_.try_emplace(key, std::uint8_t{0});
    if (inserted && out.rules_.size() > limits.max_rules) return fail(errc::limit_exceeded);
    it->second |= kind;
  }
  return out;
}

result<public_suffix_list> public_suffix_list::load(std::string const& path, psl_limits limits) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return fail(std::error_code(errno, std::generic_category()));
  std::string data;
  char buf[65536];
  std::error_code ec;
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, f);
    if (n == 0) {
      if (std::ferror(f)) ec = std::error_code(errno ? errno : EIO, std::generic_category());
      break;
    }
    if (data.size() + n > limits.max_file_size) {
      ec = make_error_code(errc::limit_exceeded);
      break;
    }
    data.append(buf, n);
  }
  std::fclose(f);
  if (ec) return fail(ec);
  return parse(data, limits);
}

std::uint8_t public_suffix_list::flags(std::string_view key, bool include_private) const {
  auto it = rules_.find(std::string(key));
  if (it == rules_.end()) return 0;
  std::uint8_t f = it->second;
  if (!include_private) f &= normal_icann | wildcard_icann | exception_icann;
  return f;
}

std::optional<public_suffix_list::match> public_suffix_list::public_suffix(std::string_view name, bool include_private) const {
  std::string lower;
  std::vector<std::size_t> starts;
  if (!split_name(name, max_labels_, lower, starts)) return std::nullopt;
  std::size_t const n = starts.size();
  auto suffix_at = [&](std::size_t i) { return std::string_view(lower).substr(starts[i]); };

  // An exception rule prevails: its public suffix is the rule without its leftmost label.
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (auto f = flags(suffix_at(i), include_private); f & (exception_icann | exception_private))
      return match{std::string(suffix_at(i + 1)), n - i - 1, (f & exception_icann) != 0, false};
  }
  // Otherwise the matching rule with the most labels; candidates are visited longest first.
  for (std::size_t i = 0; i < n; ++i) {
    // A wildcard rule "*.x" stored under x = suffix_at(i + 1) matches suffix_at(i) (one more label).
    if (i + 1 < n) {
      if (auto f = flags(suffix_at(i + 1), include_private); f & (wildcard_icann | wildcard_private))
        return match{std::string(suffix_at(i)), n - i, (f & wildcard_icann) != 0, false};
    }
    if (auto f = flags(suffix_at(i), include_private); f & (normal_icann | normal_private))
      return match{std::string(suffix_at(i)), n - i, (f & normal_icann) != 0, false};
  }
  return match{std::string(suffix_at(n - 1)), 1, false, true};
}

std::optional<std::string> public_suffix_list::registrable_domain(std::string_view name, bool include_private) const {
  auto m = public_suffix(name, include_private);
  if (!m) return std::nullopt;
  std::string lower = text::to_lower(name);
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  if (lower.size() == m->suffix.size()) return std::nullopt;  // the name is a public suffix
  // One more label to the left of the suffix.
  std::size_t end = lower.size() - m->suffix.size() - 1;  // the dot before the suffix
  std::size_t start = lower.rfind('.', end - 1);
  return lower.substr(start == std::string::npos ? 0 : start + 1);
}

std::string public_suffix_list::organizational_domain(std::string_view name, bool include_private) const {
  auto m = public_suffix(name, include_private);
  if (!m) return {};
  if (auto r = registrable_domain(name, include_private)) return *r;
  return m->suffix;
}

}  // namespace mailroom::filter
