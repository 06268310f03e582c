// Comparators, match types, dates: see util.hpp.
#include "sieve/detail/util.hpp"

#include <cstdio>

#include "mailroom/core/text.hpp"

namespace mailroom::sieve::detail {

std::optional<relation> relation_of(std::string_view op) noexcept {
  if (op == "gt") return relation::gt;
  if (op == "ge") return relation::ge;
  if (op == "lt") return relation::lt;
  if (op == "le") return relation::le;
  if (op == "eq") return relation::eq;
  if (op == "ne") return relation::ne;
  return std::nullopt;
}

comparator comparator_of(std::string_view name) noexcept {
  if (name == "i;octet") return comparator::octet;
  if (name == "i;ascii-numeric") return comparator::numeric;
  return comparator::casemap;
}

namespace {

char fold(comparator c, char ch) noexcept { return c == comparator::casemap ? text::to_lower(ch) : ch; }

// RFC 4790 i;ascii-numeric: the leading digits as a number; no leading digit is +infinity.
std::optional<std::string_view> numeric_value(std::string_view s) noexcept {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  std::string_view d = s.substr(0, n);
  while (d.size() > 1 && d.front() == '0') d.remove_prefix(1);
  return d;
}

std::size_t utf8_len(std::string_view s, std::size_t i) noexcept {
  unsigned char c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  std::size_t k = 1;
  while (k < n && i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80) ++k;
  return k;
}

}  // namespace

int order(comparator c, std::string_view a, std::string_view b) noexcept {
  if (c == comparator::numeric) {
    auto x = numeric_value(a), y = numeric_value(b);
    if (!x || !y) return (x ? -1 : 0) + (y ? 1 : 0);
    if (x->size() != y->size()) return x->size() < y->size() ? -1 : 1;
    int r = x->compare(*y);
    return r < 0 ? -1 : r > 0 ? 1 : 0;
  }
  std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto p = static_cast<unsigned char>(fold(c, a[i])), q = static_cast<unsigned char>(fold(c, b[i]));
    if (p != q) return p < q ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : a.size() < b.size() ? -1 : 1;
}

bool equals(comparator c, std::string_view a, std::string_view b) noexcept {
  if (c != comparator::numeric && a.size() != b.size()) return false;
  return order(c, a, b) == 0;
}

bool holds(relation r, int o) noexcept {
  switch (r) {
    case relation::gt: return o > 0;
    case relation::ge: return o >= 0;
    case relation::lt: return o < 0;
    case relation::le: return o <= 0;
    case relation::eq: return o == 0;
    case relation::ne: return o != 0;
  }
  return false;
}

bool contains(comparator c, std::string_view hay, std::string_view needle, budget& b) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t k = 0;
    while (k < needle.size() && fold(c, hay[i + k]) == fold(c, needle[k])) ++k;
    if (!b.spend(k + 1)) return false;
    if (k == needle.size()) return true;
  }
  return false;
}

bool wildcard(comparator c, std::string_view value, std::string_view pattern, budget& b,
              std::vector<std::string>* captures) {
  enum kind : char { lit, one, any };
  struct tok {
    kind k;
    char ch;
  };
  std::vector<tok> p;
  p.reserve(pattern.size());
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char ch = pattern[i];
    if (ch == '\\' && i + 1 < pattern.size()) p.push_back({lit, pattern[++i]});
    else if (ch == '*') {
      if (p.empty() || p.back().k != any) p.push_back({any, 0});
      else p.push_back({any, 1});  // "**": the second captures nothing, kept to number captures
    } else if (ch == '?') p.push_back({one, 0});
    else p.push_back({lit, ch});
  }
  std::vector<std::pair<std::size_t, std::size_t>> cap(p.size(), {0, 0});
  std::size_t pi = 0, vi = 0, star = SIZE_MAX, star_vi = 0;
  while (vi < value.size()) {
    if (!b.spend(1)) return false;
    if (pi < p.size() && p[pi].k == any) {
      star = pi;
      star_vi = vi;
      cap[pi] = {vi, vi};
      ++pi;
      continue;
    }
    if (pi < p.size() && p[pi].k == one) {
      std::size_t n = utf8_len(value, vi);
      cap[pi] = {vi, vi + n};
      vi += n;
      ++pi;
      continue;
    }
    if (pi < p.size() && fold(c, p[pi].ch) == fold(c, value[vi])) {
      ++vi;
      ++pi;
      continue;
    }
    if (star == SIZE_MAX) return false;
    star_vi += utf8_len(value, star_vi);
    cap[star].second = star_vi;
    vi = star_vi;
    pi = star + 1;
  }
  while (pi < p.size() && p[pi].k == any) {
    cap[pi] = {vi, vi};
    ++pi;
  }
  if (pi != p.size()) return false;
  if (captures) {
    captures->clear();
    captures->emplace_back(value);
    for (std::size_t i = 0; i < p.size(); ++i)
      if (p[i].k != lit) captures->emplace_back(value.substr(cap[i].first, cap[i].second - cap[i].first));
  }
  return true;
}

bool valid_variable_name(std::string_view name, bool allow_number) noexcept {
  if (name.empty() || name.size() > 64) return false;
  if (allow_number && name.find_first_not_of("0123456789") == std::string_view::npos) return true;
  auto alpha = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; };
  if (!alpha(name.front())) return false;
  for (char ch : name)
    if (!alpha(ch) && !(ch >= '0' && ch <= '9')) return false;
  return true;
}

bool address_header(std::string_view name) noexcept {
  static constexpr std::string_view fields[] = {
      "from",         "to",          "cc",          "bcc",          "sender",         "reply-to",
      "resent-from",  "resent-to",   "resent-cc",   "resent-bcc",   "resent-sender",  "resent-reply-to",
      "return-path",  "delivered-to", "envelope-to", "x-original-to", "errors-to",     "mail-followup-to",
      "mail-reply-to", "disposition-notification-to", "original-recipient", "x-envelope-to", "x-delivered-to"};
  for (auto f : fields)
    if (text::iequals(f, name)) return true;
  return false;
}

bool valid_mail_address(std::string_view addr) noexcept {
  auto at = addr.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == addr.size() || addr.size() > 512) return false;
  for (char ch : addr)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == '<' || ch == '>' || ch == ',' || ch == 0x7f) return false;
  for (char ch : addr.substr(at + 1))
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
          ch == '[' || ch == ']' || ch == ':' || static_cast<unsigned char>(ch) >= 0x80))
      return false;
  return true;
}

std::optional<int> parse_zone(std::string_view z) noexcept {
  if (z.size() != 5 || (z[0] != '+' && z[0] != '-')) return std::nullopt;
  for (std::size_t i = 1; i < 5; ++i)
    if (z[i] < '0' || z[i] > '9') return std::nullopt;
  int h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[3] - '0') * 10 + (z[4] - '0');
  if (m > 59) return std::nullopt;
  int v = h * 60 + m;
  return z[0] == '-' ? -v : v;
}

namespace {
constexpr std::string_view parts[] = {"year", "month", "day", "date", "julian", "hour", "minute",
                                      "second", "time", "iso8601", "std11", "zone", "weekday"};
constexpr char const* months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr char const* month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr char const* day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

// Days since 1970-01-01 of a civil date, and back (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  std::int64_t const era = (y >= 0 ? y : y - 399) / 400;
  unsigned const yoe = static_cast<unsigned>(y - era * 400);
  unsigned const doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  std::int64_t const era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned const doe = static_cast<unsigned>(z - era * 146097);
  unsigned const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned const mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

struct cursor {
  std::string_view s;
  std::size_t i = 0;
  void skip() {
    for (;;) {
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
      if (i < s.size() && s[i] == '(') {  // comment, nested
        int depth = 0;
        while (i < s.size()) {
          if (s[i] == '(') ++depth;
          else if (s[i] == ')' && --depth == 0) {
            ++i;
            break;
          }
          ++i;
        }
        continue;
      }
      return;
    }
  }
  std::optional<int> num(std::size_t min, std::size_t max) {
    skip();
    std::size_t st = i;
    int v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - st < max) v = v * 10 + (s[i++] - '0');
    if (i - st < min) return std::nullopt;
    return v;
  }
  std::string word() {
    skip();
    std::string w;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) w.push_back(text::to_lower(s[i++]));
    return w;
  }
  bool take(char ch) {
    skip();
    if (i < s.size() && s[i] == ch) {
      ++i;
      return true;
    }
    return false;
  }
};
}  // namespace

bool date_part_known(std::string_view part) noexcept {
  for (auto p : parts)
    if (p == part) return true;
  return false;
}

std::optional<datetime> parse_date(std::string_view value) noexcept {
  cursor c{value};
  c.skip();
  std::size_t save = c.i;
  std::string w = c.word();
  if (!w.empty()) {
    if (!c.take(',')) return std::nullopt;
  } else {
    c.i = save;
  }
  auto day = c.num(1, 2);
  std::string mon = c.word();
  auto year = c.num(2, 4);
  if (!day || !year) return std::nullopt;
  int month = 0;
  for (int k = 0; k < 12; ++k)
    if (mon == months[k]) month = k + 1;
  if (month == 0) return std::nullopt;
  int y = *year;
  if (y < 50) y += 2000;
  else if (y < 1000) y += 1900;
  auto hh = c.num(2, 2);
  if (!hh || !c.take(':')) return std::nullopt;
  auto mm = c.num(2, 2);
  if (!mm) return std::nullopt;
  int ss = 0;
  if (c.take(':')) {
    auto s = c.num(2, 2);
    if (!s) return std::nullopt;
    ss = *s;
  }
  c.skip();
  int zone = 0;
  if (c.i < value.size() && (value[c.i] == '+' || value[c.i] == '-')) {
    auto z = parse_zone(value.substr(c.i, 5));
    if (!z) return std::nullopt;
    zone = *z;
  } else {
    std::string zn = c.word();
    static constexpr std::pair<char const*, int> named[] = {{"ut", 0},       {"gmt", 0},      {"z", 0},
                                                            {"est", -300},   {"edt", -240},   {"cst", -360},
                                                            {"cdt", -300},   {"mst", -420},   {"mdt", -360},
                                                            {"pst", -480},   {"pdt", -420}};
    for (auto const& [n, off] : named)
      if (zn == n) zone = off;
  }
  if (*day < 1 || *day > 31 || *hh > 23 || *mm > 59 || ss > 60) return std::nullopt;
  std::int64_t days = days_from_civil(y, static_cast<unsigned>(month), static_cast<unsigned>(*day));
  std::int64_t epoch = days * 86400 + *hh * 3600 + *mm * 60 + ss - zone * 60;
  return datetime{epoch, zone};
}

std::string date_part(std::string_view part, std::int64_t epoch, int zone) {
  std::int64_t local = epoch + static_cast<std::int64_t>(zone) * 60;
  std::int64_t days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  std::int64_t secs = local - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  int hh = static_cast<int>(secs / 3600), mi = static_cast<int>(secs / 60 % 60), ss = static_cast<int>(secs % 60);
  int wd = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  int az = zone < 0 ? -zone : zone;
  char sign = zone < 0 ? '-' : '+';
  char buf[64];
  auto y4 = static_cast<long long>(y);
  if (part == "year") std::snprintf(buf, sizeof buf, "%04lld", y4);
  else if (part == "month") std::snprintf(buf, sizeof buf, "%02u", m);
  else if (part == "day") std::snprintf(buf, sizeof buf, "%02u", d);
  else if (part == "date") std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", y4, m, d);
  else if (part == "julian") std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(days + 40587));
  else if (part == "hour") std::snprintf(buf, sizeof buf, "%02d", hh);
  else if (part == "minute") std::snprintf(buf, sizeof buf, "%02d", mi);
  else if (part == "second") std::snprintf(buf, sizeof buf, "%02d", ss);
  else if (part == "time") std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", hh, mi, ss);
  else if (part == "iso8601")
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d%c%02d:%02d", y4, m, d, hh, mi, ss, sign, az / 60, az % 60);
  else if (part == "std11")
    std::snprintf(buf, sizeof buf, "%s, %u %s %04lld %02d:%02d:%02d %c%02d%02d", day_names[wd], d, month_names[m - 1], y4,
                  hh, mi, ss, sign, az / 60, az % 60);
  else if (part == "zone") std::snprintf(buf, sizeof buf, "%c%02d%02d", sign, az / 60, az % 60);
  else if (part == "weekday") std::snprintf(buf, sizeof buf, "%d", wd);
  else return {};
  return buf;
}

}  // namespace mailroom::sieve::detail
