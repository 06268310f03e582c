#include "mailroom/imap/sort.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <unordered_map>
#include <utility>

#include "mailroom/core/text.hpp"
#include "mailroom/mime/address.hpp"
#include "mailroom/mime/encoded_word.hpp"
#include "mailroom/mime/message.hpp"

namespace mailroom::imap {
namespace {

constexpr std::size_t none = thread_forest::none;
constexpr std::size_t max_references = 100;  // the last ones of a References field
constexpr std::size_t max_msg_id = 998;      // RFC 5322 line length

bool is_lws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/// i;ascii-casemap: a-z to A-Z; octet order of the result (std::string compares as unsigned char).
std::string casemap(std::string_view s) { return text::to_upper(s); }

// ---- header fields ---------------------------------------------------------------------------

struct header_view {
  std::optional<std::string_view> subject, date, from, to, cc, message_id, references, in_reply_to;
};

header_view read_header(std::string_view block, std::vector<mime::field>& scratch) {
  scratch.clear();
  (void)mime::parse_header(block, 0, scratch);  // past a limit, what was read so far still counts
  header_view h;
  auto take = [](std::optional<std::string_view>& slot, std::string_view v) {
    if (!slot) slot = v;  // the first occurrence wins
  };
  for (auto const& f : scratch) {
    auto n = f.name;
    if (text::iequals(n, "Subject")) take(h.subject, f.value);
    else if (text::iequals(n, "Date")) take(h.date, f.value);
    else if (text::iequals(n, "From")) take(h.from, f.value);
    else if (text::iequals(n, "To")) take(h.to, f.value);
    else if (text::iequals(n, "Cc")) take(h.cc, f.value);
    else if (text::iequals(n, "Message-ID")) take(h.message_id, f.value);
    else if (text::iequals(n, "References")) take(h.references, f.value);
    else if (text::iequals(n, "In-Reply-To")) take(h.in_reply_to, f.value);
  }
  return h;
}

// RFC 5256: the addr-mailbox of the first address (for a group, its start marker: the group's
// name, as in ENVELOPE). Empty when the field is missing or holds no address.
std::string first_mailbox(std::optional<std::string_view> field) {
  if (!field) return {};
  auto list = mime::parse_address_list(*field, 1);
  return list.empty() ? std::string() : std::move(list.front().mailbox);
}

// RFC 5957: the decoded display-name of the first address, or its addr-spec when that is empty.
std::string first_display(std::optional<std::string_view> field) {
  if (!field) return {};
  auto list = mime::parse_address_list(*field, 1);
  if (list.empty()) return {};
  auto& a = list.front();
  auto name = mime::decode_header_value(a.name);
  if (!name.empty()) return name;
  if (a.host.empty()) return a.mailbox;
  return a.mailbox + "@" + a.host;
}

// ---- dates -----------------------------------------------------------------------------------

struct token {
  enum kind { num, word, sym } k;
  std::string_view s;
};

// Tokens of a date-time with comments and white space removed; at most 24 (the rest is ignored).
std::vector<token> date_tokens(std::string_view v) {
  std::vector<token> out;
  std::size_t i = 0;
  while (i < v.size() && out.size() < 24) {
    char c = v[i];
    if (is_lws(c)) {
      ++i;
    } else if (c == '(') {
      int depth = 0;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\') ++i;
        else if (v[i] == '(') ++depth;
        else if (v[i] == ')' && --depth == 0) {
          ++i;
          break;
        }
      }
    } else if (is_digit(c) || is_alpha(c)) {
      auto start = i;
      bool digit = is_digit(c);
      while (i < v.size() && (digit ? is_digit(v[i]) : is_alpha(v[i]))) ++i;
      out.push_back({digit ? token::num : token::word, v.substr(start, i - start)});
    } else {
      out.push_back({token::sym, v.substr(i, 1)});
      ++i;
    }
  }
  return out;
}

constexpr std::array<std::string_view, 12> month_names = {"january", "february", "march",     "april",
                                                          "may",     "june",     "july",      "august",
                                                          "september", "october", "november", "december"};
constexpr std::array<std::string_view, 7> day_names = {"monday", "tuesday", "wednesday", "thursday",
                                                       "friday", "saturday", "sunday"};

// "Jan", "jan", "January": 0-11; -1 otherwise.
int month_index(std::string_view w) {
  if (w.size() < 3) return -1;
  auto lw = text::to_lower(w);
  for (int m = 0; m < 12; ++m) {
    auto full = month_names[static_cast<std::size_t>(m)];
    if (lw.size() == 3 ? full.substr(0, 3) == lw : full == lw) return m;
  }
  return -1;
}

bool is_day_name(std::string_view w) {
  if (w.size() < 3) return false;
  auto lw = text::to_lower(w);
  for (auto d : day_names)
    if (lw.size() == 3 ? d.substr(0, 3) == lw : d == lw) return true;
  return false;
}

std::optional<int> number(token const& t, std::size_t min_digits, std::size_t max_digits) {
  if (t.k != token::num || t.s.size() < min_digits || t.s.size() > max_digits) return std::nullopt;
  int v = 0;
  for (char c : t.s) v = v * 10 + (c - '0');
  return v;
}

bool leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days from 1970-01-01 to y-m-d (m 0-11), for years 1..9999.
std::int64_t days_since_epoch(std::int64_t y, int m, int d) {
  static constexpr std::array<int, 12> before = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  auto leaps_before = [](std::int64_t year) {  // leap years in [1, year)
    auto p = year - 1;
    return p / 4 - p / 100 + p / 400;
  };
  return 365 * (y - 1970) + (leaps_before(y) - leaps_before(1970)) + before[static_cast<std::size_t>(m)] +
         ((m > 1 && leap(y)) ? 1 : 0) + (d - 1);
}

// Alphabetic zones (RFC 5322 4.3): offset in minutes east of UTC; unknown ones are -0000.
int alpha_zone(std::string_view w) {
  struct z {
    std::string_view name;
    int minutes;
  };
  static constexpr std::array<z, 8> us = {{{"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300},
                                           {"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420}}};
  for (auto const& e : us)
    if (text::iequals(e.name, w)) return e.minutes;
  return 0;  // UT, GMT, UTC, military letters (their sign was garbled historically), anything else
}

}  // namespace

std::optional<std::int64_t> parse_message_date(std::string_view v) {
  auto t = date_tokens(v);
  std::size_t i = 0;
  auto at = [&](std::size_t k) -> token const* { return k < t.size() ? &t[k] : nullptr; };
  auto is_sym = [&](std::size_t k, char c) { return k < t.size() && t[k].k == token::sym && t[k].s[0] == c; };
  if (at(i) && t[i].k == token::word && is_day_name(t[i].s)) {
    ++i;
    if (is_sym(i, ',')) ++i;
  } else if (is_sym(i, ',')) {
    ++i;
  }
  auto day = at(i) ? number(t[i], 1, 2) : std::nullopt;
  if (!day) return std::nullopt;
  ++i;
  if (is_sym(i, '-')) ++i;
  int month = at(i) && t[i].k == token::word ? month_index(t[i].s) : -1;
  if (month < 0) return std::nullopt;
  ++i;
  if (is_sym(i, '-')) ++i;
  auto year_digits = at(i) && t[i].k == token::num ? t[i].s.size() : 0;
  auto year_value = at(i) ? number(t[i], 2, 4) : std::nullopt;
  if (!year_value) return std::nullopt;
  ++i;
  std::int64_t year = *year_value;
  if (year_digits == 2) year += year < 50 ? 2000 : 1900;  // RFC 5322 4.3
  else if (year_digits == 3) year += 1900;
  if (year < 1900 || year > 9999) return std::nullopt;

  auto hour = at(i) ? number(t[i], 1, 2) : std::nullopt;
  if (!hour || !is_sym(i + 1, ':')) return std::nullopt;
  auto minute = at(i + 2) ? number(t[i + 2], 1, 2) : std::nullopt;
  if (!minute) return std::nullopt;
  i += 3;
  int second = 0;
  if (is_sym(i, ':')) {
    auto s = at(i + 1) ? number(t[i + 1], 1, 2) : std::nullopt;
    if (!s) return std::nullopt;
    second = *s;
    i += 2;
  }
  int zone_minutes = 0;
  if (is_sym(i, '+') || is_sym(i, '-')) {
    int sign = t[i].s[0] == '-' ? -1 : 1;
    int hh, mm;
    if (auto z = at(i + 1) ? number(t[i + 1], 4, 4) : std::nullopt) {
      hh = *z / 100;
      mm = *z % 100;
    } else if (auto h = at(i + 1) ? number(t[i + 1], 2, 2) : std::nullopt; h && is_sym(i + 2, ':')) {
      auto m = at(i + 3) ? number(t[i + 3], 2, 2) : std::nullopt;
      if (!m) return std::nullopt;
      hh = *h;
      mm = *m;
    } else {
      return std::nullopt;
    }
    if (mm > 59) return std::nullopt;
    zone_minutes = sign * (hh * 60 + mm);
  } else if (at(i) && t[i].k == token::word) {
    zone_minutes = alpha_zone(t[i].s);
  } else if (at(i)) {
    return std::nullopt;  // something that is no zone
  }  // else no zone at all: +0000

  static constexpr std::array<int, 12> month_days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int max_day = month_days[static_cast<std::size_t>(month)] + ((month == 1 && leap(year)) ? 1 : 0);
  if (*day < 1 || *day > max_day || *hour > 23 || *minute > 59 || second > 60) return std::nullopt;
  return days_since_epoch(year, month, *day) * 86400 + *hour * 3600 + *minute * 60 + second -
         static_cast<std::int64_t>(zone_minutes) * 60;
}

// ---- base subject ----------------------------------------------------------------------------

namespace {

struct subject_info {
  std::string base;
  bool reply_or_forward = false;
};

// s[b..e): "[" *BLOBCHAR "]" *WSP; returns the end, or none. BLOBCHAR is any octet but NUL, '[', ']'.
std::size_t match_blob(std::string_view s, std::size_t b, std::size_t e) {
  if (b >= e || s[b] != '[') return none;
  std::size_t i = b + 1;
  while (i < e && s[i] != ']') {
    if (s[i] == '[' || s[i] == '\0') return none;
    ++i;
  }
  if (i >= e) return none;
  ++i;
  while (i < e && s[i] == ' ') ++i;
  return i;
}

// subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
std::size_t match_refwd(std::string_view s, std::size_t b, std::size_t e) {
  if (e - b < 3) return none;
  std::size_t i;
  if (text::iequals(s.substr(b, 2), "re")) {
    i = b + 2;
  } else if (text::iequals(s.substr(b, 2), "fw")) {
    i = b + 2;
    if (i < e && text::to_lower(s[i]) == 'd') ++i;
  } else {
    return none;
  }
  while (i < e && s[i] == ' ') ++i;
  if (i < e && s[i] == '[') {
    i = match_blob(s, i, e);
    if (i == none) return none;
  }
  if (i < e && s[i] == ':') return i + 1;
  return none;
}

subject_info extract_subject(std::string_view raw) {
  // (1) RFC 2047 decoding (which also unfolds), tabs to spaces, runs of spaces to one.
  auto decoded = mime::decode_header_value(raw);
  std::string s;
  s.reserve(decoded.size());
  for (char c : decoded) {
    if (is_lws(c)) c = ' ';
    if (c == ' ' && !s.empty() && s.back() == ' ') continue;
    s += c;
  }
  subject_info info;
  std::string_view v = s;
  std::size_t b = 0, e = v.size();
  for (;;) {
    // (2) subj-trailer = "(fwd)" / WSP, from the end, repeatedly.
    while (e > b) {
      if (v[e - 1] == ' ') {
        --e;
      } else if (e - b >= 5 && text::iequals(v.substr(e - 5, 5), "(fwd)")) {
        e -= 5;
        info.reply_or_forward = true;
      } else {
        break;
      }
    }
    // (3)-(5): leaders and blobs. `failed` remembers where the blob run before a failed
    // subj-refwd ended: step (4) only removes those blobs one at a time, and step (3) cannot
    // succeed again before b passes that point, so the run is not rescanned (no quadratic time
    // on "[a][a][a]...[a] x").
    std::size_t failed = none;
    for (;;) {
      for (;;) {  // (3) subj-leader = (*subj-blob subj-refwd) / WSP
        if (b < e && v[b] == ' ') {
          ++b;
          continue;
        }
        if (failed != none && b <= failed) break;
        std::size_t q = b;
        for (auto n = match_blob(v, q, e); n != none; n = match_blob(v, q, e)) q = n;
        auto r = match_refwd(v, q, e);
        if (r == none) {
          failed = q;
          break;
        }
        b = r;
        info.reply_or_forward = true;
        failed = none;
      }
      // (4) a leading subj-blob, if what remains is a non-empty subj-base.
      auto n = match_blob(v, b, e);
      if (n != none && n < e) {
        b = n;
        continue;  // (5)
      }
      break;
    }
    // (6) "[fwd:" subject "]": unwrap and start again from (2).
    if (e - b >= 6 && text::iequals(v.substr(b, 5), "[fwd:") && v[e - 1] == ']') {
      b += 5;
      e -= 1;
      info.reply_or_forward = true;
      continue;
    }
    break;
  }
  info.base = std::string(v.substr(b, e - b));
  return info;
}

}  // namespace

std::string base_subject(std::string_view subject_field_value) {
  return extract_subject(subject_field_value).base;
}

bool is_reply_or_forward(std::string_view subject_field_value) {
  return extract_subject(subject_field_value).reply_or_forward;
}

// ---- SORT ------------------------------------------------------------------------------------

std::optional<sort_key> parse_sort_key(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, sort_key>, 9> keys = {{
      {"ARRIVAL", sort_key::arrival},
      {"CC", sort_key::cc},
      {"DATE", sort_key::date},
      {"FROM", sort_key::from},
      {"SIZE", sort_key::size},
      {"SUBJECT", sort_key::subject},
      {"TO", sort_key::to},
      {"DISPLAYFROM", sort_key::display_from},
      {"DISPLAYTO", sort_key::display_to},
  }};
  for (auto const& [n, k] : keys)
    if (text::iequals(n, name)) return k;
  return std::nullopt;
}

std::optional<std::vector<sort_criterion>> parse_sort_criteria(std::span<std::string_view const> atoms) {
  std::vector<sort_criterion> out;
  bool reverse = false;
  for (auto a : atoms) {
    if (text::iequals(a, "REVERSE")) {
      reverse = true;
      continue;
    }
    auto k = parse_sort_key(a);
    if (!k) return std::nullopt;
    out.push_back({*k, reverse});
    reverse = false;
  }
  if (out.empty() || reverse) return std::nullopt;
  return out;
}

namespace {

std::int64_t sent_date(sort_message const& m, std::optional<std::string_view> date_field) {
  if (date_field)
    if (auto d = parse_message_date(*date_field)) return *d;
  return m.internal_date;  // RFC 5256 2.2: missing or invalid Date
}

// One criterion's keys, one per message: numbers or i;ascii-casemap-folded strings.
struct column {
  sort_criterion by;
  std::vector<std::int64_t> number;
  std::vector<std::string> text;
};

bool is_string_key(sort_key k) {
  return k != sort_key::arrival && k != sort_key::date && k != sort_key::size;
}

}  // namespace

std::vector<std::size_t> sort_messages(std::span<sort_message const> msgs, std::span<sort_criterion const> by) {
  std::vector<column> cols;
  cols.reserve(by.size());
  bool need_header = false;
  for (auto const& c : by) {
    cols.push_back({c, {}, {}});
    if (is_string_key(c.key)) cols.back().text.resize(msgs.size());
    else cols.back().number.resize(msgs.size());
    need_header = need_header || (c.key != sort_key::arrival && c.key != sort_key::size);
  }
  std::vector<mime::field> scratch;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    auto const& m = msgs[i];
    header_view h;
    if (need_header) h = read_header(m.header, scratch);
    for (auto& col : cols) {
      switch (col.by.key) {
        case sort_key::arrival: col.number[i] = m.internal_date; break;
        case sort_key::date: col.number[i] = sent_date(m, h.date); break;
        case sort_key::size:  // RFC822.SIZE fits easily; saturate rather than wrap
          col.number[i] = m.size > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(m.size);
          break;
        case sort_key::cc: col.text[i] = casemap(first_mailbox(h.cc)); break;
        case sort_key::from: col.text[i] = casemap(first_mailbox(h.from)); break;
        case sort_key::to: col.text[i] = casemap(first_mailbox(h.to)); break;
        case sort_key::subject: col.text[i] = casemap(h.subject ? base_subject(*h.subject) : std::string()); break;
        case sort_key::display_from: col.text[i] = casemap(first_display(h.from)); break;
        case sort_key::display_to: col.text[i] = casemap(first_display(h.to)); break;
      }
    }
  }
  std::vector<std::size_t> order(msgs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    for (auto const& col : cols) {
      int c = 0;
      if (is_string_key(col.by.key)) c = col.text[a].compare(col.text[b]);
      else if (col.number[a] != col.number[b]) c = col.number[a] < col.number[b] ? -1 : 1;
      if (c != 0) return col.by.reverse ? c > 0 : c < 0;
    }
    if (msgs[a].seq != msgs[b].seq) return msgs[a].seq < msgs[b].seq;
    return a < b;
  });
  return order;
}

std::optional<thread_algorithm> parse_thread_algorithm(std::string_view name) {
  if (text::iequals(name, "ORDEREDSUBJECT")) return thread_algorithm::orderedsubject;
  if (text::iequals(name, "REFERENCES")) return thread_algorithm::references;
  return std::nullopt;
}

// ---- THREAD ----------------------------------------------------------------------------------

namespace {

// What threading needs from each message.
struct thread_info {
  std::string subject;  // base subject, i;ascii-casemap-folded
  bool reply_or_forward = false;
  std::int64_t date = 0;
  std::uint32_t seq = 0;
};

// Sent-date order with the sequence number as tie-breaker (RFC 5256 2.2), then the index.
bool date_before(thread_info const& a, std::size_t ia, thread_info const& b, std::size_t ib) {
  if (a.date != b.date) return a.date < b.date;
  if (a.seq != b.seq) return a.seq < b.seq;
  return ia < ib;
}

// Calls f(id) for each msg-id "<...>" of a field, in order, until f returns false. Comments and
// quoted strings outside the brackets are skipped (In-Reply-To may carry an obsolete phrase);
// white space inside the brackets is removed (copies land in `arena`); ids that are empty on
// either side of an '@', lack one, or are longer than max_msg_id are skipped.
template <class F>
void for_each_msg_id(std::string_view v, std::deque<std::string>& arena, F&& f) {
  std::size_t i = 0;
  while (i < v.size()) {
    char c = v[i];
    if (c == '(') {
      int depth = 0;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\') ++i;
        else if (v[i] == '(') ++depth;
        else if (v[i] == ')' && --depth == 0) break;
      }
      ++i;
      continue;
    }
    if (c == '"') {
      for (++i; i < v.size() && v[i] != '"'; ++i)
        if (v[i] == '\\') ++i;
      ++i;
      continue;
    }
    if (c != '<') {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    bool space = false;
    while (j < v.size() && v[j] != '>' && v[j] != '<') {
      if (is_lws(v[j])) space = true;
      ++j;
    }
    if (j >= v.size()) return;
    if (v[j] == '<') {  // "<<id>": start again at the inner bracket
      i = j;
      continue;
    }
    auto id = v.substr(i + 1, j - i - 1);
    i = j + 1;
    if (id.size() > max_msg_id) continue;
    if (space) {
      std::string compact;
      for (char ch : id)
        if (!is_lws(ch)) compact += ch;
      arena.push_back(std::move(compact));
      id = arena.back();
    }
    auto at = id.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == id.size()) continue;
    if (!f(id)) return;
  }
}

// Containers of the REFERENCES algorithm: messages and dummies, with doubly linked child lists.
struct container {
  std::size_t msg = none;  // index into the messages; none for a dummy
  std::size_t parent = none, first = none, last = none, next = none, prev = none;
};

struct tree {
  std::vector<container> c;

  std::size_t add(std::size_t msg) {
    c.push_back({});
    c.back().msg = msg;
    return c.size() - 1;
  }
  bool dummy(std::size_t x) const { return c[x].msg == none; }
  void append_child(std::size_t p, std::size_t x) {
    c[x].parent = p;
    c[x].prev = c[p].last;
    c[x].next = none;
    if (c[p].last != none) c[c[p].last].next = x;
    else c[p].first = x;
    c[p].last = x;
  }
  void detach(std::size_t x) {
    auto p = c[x].parent;
    if (p == none) return;
    if (c[x].prev != none) c[c[x].prev].next = c[x].next;
    else c[p].first = c[x].next;
    if (c[x].next != none) c[c[x].next].prev = c[x].prev;
    else c[p].last = c[x].prev;
    c[x].parent = c[x].prev = c[x].next = none;
  }
  std::vector<std::size_t> children(std::size_t p) const {
    std::vector<std::size_t> out;
    for (auto k = c[p].first; k != none; k = c[k].next) out.push_back(k);
    return out;
  }
  void set_children(std::size_t p, std::vector<std::size_t> const& kids) {
    c[p].first = c[p].last = none;
    for (auto k : kids) append_child(p, k);
  }
  // Every node under `root`, each after all of its descendants; no recursion.
  std::vector<std::size_t> post_order(std::size_t root) const {
    std::vector<std::size_t> order, stack{root};
    while (!stack.empty()) {
      auto x = stack.back();
      stack.pop_back();
      order.push_back(x);
      for (auto k = c[x].first; k != none; k = c[k].next) stack.push_back(k);
    }
    std::reverse(order.begin(), order.end());
    return order;
  }
};

// A link-cut forest (Sleator and Tarjan) mirroring the parent links of step 1, so that "would
// this link make a loop?" costs O(log n) amortised instead of a walk up a possibly very long
// chain of ancestors (which hostile References can make quadratic). Splay trees over preferred
// paths; all operations iterative. Rooted, no re-rooting: link() needs a root as the child.
class link_cut {
 public:
  void add() { t_.emplace_back(); }
  std::size_t find_root(std::size_t x) {
    access(x);
    while (t_[x].ch[0] != none) x = t_[x].ch[0];
    splay(x);
    return x;
  }
  void link(std::size_t child, std::size_t parent) {  // child must be a root
    access(child);
    t_[child].par = parent;
  }
  void cut(std::size_t x) {  // from its parent
    access(x);
    auto l = t_[x].ch[0];
    if (l != none) {
      t_[l].par = none;
      t_[x].ch[0] = none;
    }
  }

 private:
  struct node {
    std::size_t ch[2] = {none, none};
    std::size_t par = none;  // parent in the splay tree, or path-parent for a splay root
  };
  bool splay_root(std::size_t x) const {
    auto p = t_[x].par;
    return p == none || (t_[p].ch[0] != x && t_[p].ch[1] != x);
  }
  void rotate(std::size_t x) {
    auto p = t_[x].par;
    auto g = t_[p].par;
    bool p_root = splay_root(p);
    int d = t_[p].ch[1] == x ? 1 : 0;
    auto b = t_[x].ch[d ^ 1];
    if (!p_root) t_[g].ch[t_[g].ch[1] == p ? 1 : 0] = x;
    t_[x].par = g;
    t_[x].ch[d ^ 1] = p;
    t_[p].par = x;
    t_[p].ch[d] = b;
    if (b != none) t_[b].par = p;
  }
  void splay(std::size_t x) {
    while (!splay_root(x)) {
      auto p = t_[x].par;
      if (!splay_root(p)) {
        auto g = t_[p].par;
        bool same_side = (t_[g].ch[1] == p) == (t_[p].ch[1] == x);
        rotate(same_side ? p : x);
      }
      rotate(x);
    }
  }
  void access(std::size_t x) {
    std::size_t last = none;
    for (auto y = x; y != none; y = t_[y].par) {
      splay(y);
      t_[y].ch[1] = last;
      last = y;
    }
    splay(x);
  }
  std::vector<node> t_;
};

// Sorts the children of every node under `root` by sent date, children before parents, so a
// dummy (top level only) sorts by its first child (RFC 5256 section 3, steps 4 and 6).
void sort_siblings(tree& tr, std::span<thread_info const> info, std::vector<std::size_t> const& nodes) {
  auto first_msg = [&](std::size_t x) {
    for (std::size_t guard = 0; x != none && tr.dummy(x) && guard < 2; ++guard) x = tr.c[x].first;
    return x == none ? none : tr.c[x].msg;
  };
  for (auto x : nodes) {
    if (tr.c[x].first == none || tr.c[x].first == tr.c[x].last) continue;
    auto kids = tr.children(x);
    std::vector<std::pair<std::size_t, std::size_t>> keyed;  // (message, node)
    keyed.reserve(kids.size());
    for (auto k : kids) keyed.emplace_back(first_msg(k), k);
    std::stable_sort(keyed.begin(), keyed.end(), [&](auto const& a, auto const& b) {
      if (a.first == none || b.first == none) return a.first != none && b.first == none;
      return date_before(info[a.first], a.first, info[b.first], b.first);
    });
    for (std::size_t i = 0; i < kids.size(); ++i) kids[i] = keyed[i].second;
    tr.set_children(x, kids);
  }
}

thread_forest to_forest(tree const& tr, std::size_t root) {
  thread_forest f;
  std::vector<std::pair<std::size_t, std::size_t>> work;  // (container, its node in f)
  auto emit_children = [&](std::size_t parent, std::size_t out_parent) {
    std::size_t prev = none;
    for (auto k = tr.c[parent].first; k != none; k = tr.c[k].next) {
      f.nodes.push_back({tr.c[k].msg, none, none});
      auto o = f.nodes.size() - 1;
      if (prev != none) f.nodes[prev].next_sibling = o;
      else if (out_parent != none) f.nodes[out_parent].first_child = o;
      else f.first_root = o;
      prev = o;
      work.emplace_back(k, o);
    }
  };
  emit_children(root, none);
  while (!work.empty()) {
    auto [k, o] = work.back();
    work.pop_back();
    emit_children(k, o);
  }
  return f;
}

thread_forest thread_references(std::span<sort_message const> msgs, std::vector<thread_info> const& info,
                                std::vector<std::size_t> const& by_seq) {
  tree tr;
  link_cut lc;
  std::unordered_map<std::string_view, std::size_t> ids;  // Message-ID -> container (case-sensitive)
  std::deque<std::string> arena;
  std::vector<mime::field> scratch;
  auto add = [&](std::size_t msg) {
    lc.add();
    return tr.add(msg);
  };
  auto lookup = [&](std::string_view id) {
    auto [it, inserted] = ids.try_emplace(id, none);
    if (inserted) it->second = add(none);  // a dummy until (unless) its message shows up
    return it->second;
  };
  // Would making p the parent of x (a root) close a loop, i.e. is p x or one of its descendants?
  auto loops = [&](std::size_t p, std::size_t x) {
    if (p == x) return true;
    if (tr.c[x].first == none) return false;  // x has no descendants
    return lc.find_root(p) == x;
  };
  auto link = [&](std::size_t p, std::size_t x) {
    tr.append_child(p, x);
    lc.link(x, p);
  };
  auto unlink = [&](std::size_t x) {
    tr.detach(x);
    lc.cut(x);
  };
  std::vector<std::string_view> refs;
  for (auto i : by_seq) {  // (1) in sequence order: the first message keeps a duplicated ID
    auto h = read_header(msgs[i].header, scratch);
    std::optional<std::string_view> id;
    if (h.message_id)
      for_each_msg_id(*h.message_id, arena, [&](std::string_view v) {
        id = v;
        return false;
      });
    std::size_t self = none;
    if (id) {
      auto it = ids.find(*id);
      if (it == ids.end()) {
        self = add(i);
        ids.emplace(*id, self);
      } else if (tr.dummy(it->second)) {
        self = it->second;
        tr.c[self].msg = i;
      }
    }
    if (self == none) self = add(i);  // no ID, or a duplicate: a unique ID nobody refers to
    refs.clear();
    if (h.references)
      for_each_msg_id(*h.references, arena, [&](std::string_view v) {
        refs.push_back(v);
        if (refs.size() == 2 * max_references) refs.erase(refs.begin(), refs.begin() + max_references);
        return true;
      });
    if (refs.size() > max_references) refs.erase(refs.begin(), refs.end() - max_references);
    if (refs.empty() && h.in_reply_to)
      for_each_msg_id(*h.in_reply_to, arena, [&](std::string_view v) {
        refs.push_back(v);
        return false;
      });
    // (1A) each reference is the parent of the next, unless the child already has a parent
    // or the link would make a loop.
    std::size_t prev = none;
    for (auto r : refs) {
      auto cur = lookup(r);
      if (prev != none && tr.c[cur].parent == none && !loops(prev, cur)) link(prev, cur);
      prev = cur;
    }
    // (1B) the last reference is this message's parent, replacing any parent 1A gave it.
    if (tr.c[self].parent != prev) {
      if (tr.c[self].parent != none) unlink(self);
      if (prev != none && !loops(prev, self)) link(prev, self);
    }
  }

  // (2) every parentless container becomes a child of the root.
  auto root = tr.add(none);
  for (std::size_t x = 0; x < root; ++x)
    if (tr.c[x].parent == none) tr.append_child(root, x);

  // (3) prune dummies: children before parents, so a dummy's own dummies are gone already.
  for (auto x : tr.post_order(root)) {
    if (tr.c[x].first == none) continue;
    std::vector<std::size_t> kept;
    bool changed = false;
    for (auto k = tr.c[x].first; k != none; k = tr.c[k].next) {
      if (!tr.dummy(k)) {
        kept.push_back(k);
        continue;
      }
      changed = true;
      auto grand = tr.children(k);
      if (grand.empty()) continue;                     // a childless dummy goes
      if (x == root && grand.size() > 1) {             // children stay below it, not at the root
        kept.push_back(k);
        continue;
      }
      kept.insert(kept.end(), grand.begin(), grand.end());  // promoted to this level
    }
    if (changed) tr.set_children(x, kept);
  }

  // (4) sort the top level by sent date (a dummy by its first child, its children sorted first).
  auto top = tr.children(root);
  for (auto x : top)
    if (tr.dummy(x)) sort_siblings(tr, info, {x});
  sort_siblings(tr, info, {root});

  // (5) merge threads with the same base subject.
  auto subject_msg = [&](std::size_t x) {  // the message whose subject is the thread subject
    if (!tr.dummy(x)) return tr.c[x].msg;
    auto f = tr.c[x].first;
    return f == none ? none : tr.c[f].msg;
  };
  std::unordered_map<std::string_view, std::size_t> subjects;
  top = tr.children(root);
  for (auto x : top) {  // (5B)
    auto m = subject_msg(x);
    if (m == none || info[m].subject.empty()) continue;
    auto [it, inserted] = subjects.try_emplace(info[m].subject, x);
    if (inserted) continue;
    auto y = it->second;
    if (!tr.dummy(y) && (tr.dummy(x) || (info[tr.c[y].msg].reply_or_forward && !info[tr.c[x].msg].reply_or_forward)))
      it->second = x;
  }
  for (auto x : top) {  // (5C)
    if (tr.c[x].parent != root) continue;  // already merged below another thread
    auto m = subject_msg(x);
    if (m == none || info[m].subject.empty()) continue;
    auto it = subjects.find(info[m].subject);
    if (it == subjects.end() || it->second == x) continue;
    auto y = it->second;
    if (tr.dummy(x) && tr.dummy(y)) {
      for (auto k : tr.children(x)) {
        tr.detach(k);
        tr.append_child(y, k);
      }
      tr.detach(x);
    } else if (tr.dummy(y)) {  // the message joins the dummy's children
      tr.detach(x);
      tr.append_child(y, x);
    } else if (tr.dummy(x)) {
      // Cannot happen (5B prefers a dummy over a message), but stay sound: keep the dummy on top.
      tr.detach(y);
      tr.append_child(x, y);
      it->second = x;
    } else if (info[tr.c[x].msg].reply_or_forward && !info[tr.c[y].msg].reply_or_forward) {
      tr.detach(x);
      tr.append_child(y, x);
    } else {  // both replies, or neither: siblings under a new dummy
      auto d = tr.add(none);
      tr.detach(y);
      tr.detach(x);
      tr.append_child(root, d);
      tr.append_child(d, y);
      tr.append_child(d, x);
      it->second = d;
    }
  }

  // (6) sort every set of siblings, the deepest first.
  sort_siblings(tr, info, tr.post_order(root));
  return to_forest(tr, root);
}

thread_forest thread_ordered_subject(std::vector<thread_info> const& info) {
  std::vector<std::size_t> order(info.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (int c = info[a].subject.compare(info[b].subject); c != 0) return c < 0;
    return date_before(info[a], a, info[b], b);
  });
  // Threads are runs of equal base subject; each run is in date order already.
  std::vector<std::pair<std::size_t, std::size_t>> runs;  // [begin, end) in order
  for (std::size_t i = 0; i < order.size();) {
    auto j = i + 1;
    while (j < order.size() && info[order[j]].subject == info[order[i]].subject) ++j;
    runs.emplace_back(i, j);
    i = j;
  }
  std::sort(runs.begin(), runs.end(), [&](auto const& a, auto const& b) {
    auto x = order[a.first], y = order[b.first];
    return date_before(info[x], x, info[y], y);
  });
  // The first message of a thread is its root; all later ones are its children.
  thread_forest f;
  f.nodes.reserve(order.size());
  std::size_t prev_root = none;
  for (auto [b, e] : runs) {
    f.nodes.push_back({order[b], none, none});
    auto r = f.nodes.size() - 1;
    if (prev_root == none) f.first_root = r;
    else f.nodes[prev_root].next_sibling = r;
    prev_root = r;
    std::size_t prev = none;
    for (auto k = b + 1; k < e; ++k) {
      f.nodes.push_back({order[k], none, none});
      auto o = f.nodes.size() - 1;
      if (prev == none) f.nodes[r].first_child = o;
      else f.nodes[prev].next_sibling = o;
      prev = o;
    }
  }
  return f;
}

}  // namespace

thread_forest build_threads(std::span<sort_message const> msgs, thread_algorithm alg) {
  std::vector<thread_info> info(msgs.size());
  std::vector<mime::field> scratch;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    auto h = read_header(msgs[i].header, scratch);
    if (h.subject) {
      auto s = extract_subject(*h.subject);
      info[i].subject = casemap(s.base);
      info[i].reply_or_forward = s.reply_or_forward;
    }
    info[i].date = sent_date(msgs[i], h.date);
    info[i].seq = msgs[i].seq;
  }
  if (alg == thread_algorithm::orderedsubject) return thread_ordered_subject(info);
  std::vector<std::size_t> by_seq(msgs.size());
  for (std::size_t i = 0; i < by_seq.size(); ++i) by_seq[i] = i;
  std::stable_sort(by_seq.begin(), by_seq.end(), [&](std::size_t a, std::size_t b) { return msgs[a].seq < msgs[b].seq; });
  return thread_references(msgs, info, by_seq);
}

std::string format_threads(thread_forest const& f, std::span<sort_message const> msgs, bool uid) {
  std::string out;
  auto const& n = f.nodes;
  auto valid = [&](std::size_t x) { return x < n.size(); };
  auto is_msg = [&](std::size_t x) { return n[x].message < msgs.size(); };
  // Tasks on an explicit stack: print a node's members, or a parenthesised node, or a ")".
  enum class kind { members, wrapped, close };
  struct task {
    kind k;
    std::size_t node;
  };
  std::vector<task> stack;
  std::vector<std::size_t> kids;
  // A malformed forest (a cycle) must not loop forever: every node prints at most once.
  std::vector<bool> seen(n.size(), false);
  auto children = [&](std::size_t x) {
    kids.clear();
    for (auto k = n[x].first_child; valid(k) && !seen[k]; k = n[k].next_sibling) {
      seen[k] = true;
      kids.push_back(k);
    }
  };
  for (auto r = f.first_root; valid(r) && !seen[r]; r = n[r].next_sibling) {
    seen[r] = true;
    if (!is_msg(r) && !valid(n[r].first_child)) continue;  // an empty dummy prints nothing
    out += '(';
    stack.push_back({kind::close, 0});
    stack.push_back({kind::members, r});
    while (!stack.empty()) {
      auto t = stack.back();
      stack.pop_back();
      if (t.k == kind::close) {
        out += ')';
        continue;
      }
      if (t.k == kind::wrapped) {
        out += '(';
        stack.push_back({kind::close, 0});
      }
      auto x = t.node;
      bool msg = is_msg(x);
      if (msg) out += std::to_string(uid ? msgs[n[x].message].uid : msgs[n[x].message].seq);
      children(x);
      if (kids.empty()) continue;
      if (kids.size() == 1) {  // a chain continues in the same list: "3 6"
        if (msg) out += ' ';
        stack.push_back({kind::members, kids[0]});
        continue;
      }
      if (msg) out += ' ';  // "6 (4 23)(44 7 96)"; a dummy's children alone: "((3)(5))"
      for (auto k = kids.rbegin(); k != kids.rend(); ++k) stack.push_back({kind::wrapped, *k});
    }
  }
  return out;
}

std::string thread_messages(std::span<sort_message const> msgs, thread_algorithm alg, bool uid) {
  return format_threads(build_threads(msgs, alg), msgs, uid);
}

}  // namespace mailroom::imap
