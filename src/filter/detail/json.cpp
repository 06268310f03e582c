#include "filter/detail/json.hpp"

#include <charconv>
#include <cmath>

#include "mailroom/core/text.hpp"
#include "mailroom/filter/scanner.hpp"

namespace mailroom::filter::detail {

json_value const* json_value::find(std::string_view key) const noexcept {
  if (k != kind::object) return nullptr;
  for (auto const& [name, value] : members)
    if (name == key) return &value;
  return nullptr;
}

namespace {

class reader {
 public:
  reader(std::string_view text, json_limits const& limits) : s_(text), limits_(limits) {}

  result<json_value> document() {
    json_value v;
    if (auto r = value(v, 0); !r) return fail(r.error());
    skip_space();
    if (pos_ != s_.size()) return fail(scan_errc::malformed_reply);
    return v;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  result<void> value(json_value& out, std::size_t depth) {
    if (++values_ > limits_.max_values) return fail(scan_errc::reply_too_large);
    skip_space();
    if (pos_ >= s_.size()) return fail(scan_errc::malformed_reply);
    char const c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= limits_.max_depth) return fail(scan_errc::reply_too_large);
      ++pos_;
      return c == '{' ? object(out, depth + 1) : array(out, depth + 1);
    }
    if (c == '"') {
      out.k = json_value::kind::string;
      return string(out.string);
    }
    if (literal("true") || literal("false")) {
      out.k = json_value::kind::boolean;
      out.boolean = c == 't';
      return {};
    }
    if (literal("null")) return {};
    return number(out);
  }

  result<void> object(json_value& out, std::size_t depth) {
    out.k = json_value::kind::object;
    if (eat('}')) return {};
    for (;;) {
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail(scan_errc::malformed_reply);
      std::string name;
      if (auto r = string(name); !r) return r;
      if (!eat(':')) return fail(scan_errc::malformed_reply);
      out.members.emplace_back();
      out.members.back().name = std::move(name);
      if (auto r = value(out.members.back().value, depth); !r) return r;
      if (eat('}')) return {};
      if (!eat(',')) return fail(scan_errc::malformed_reply);
    }
  }

  result<void> array(json_value& out, std::size_t depth) {
    out.k = json_value::kind::array;
    if (eat(']')) return {};
    for (;;) {
      out.elements.emplace_back();
      if (auto r = value(out.elements.back(), depth); !r) return r;
      if (eat(']')) return {};
      if (!eat(',')) return fail(scan_errc::malformed_reply);
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& out) {
    if (s_.size() - pos_ < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(s_[pos_++]);
      if (h < 0) return false;
      out = out * 16 + static_cast<unsigned>(h);
    }
    return true;
  }
  // At the opening quote.
  result<void> string(std::string& out) {
    ++pos_;
    for (;;) {
      if (out.size() > limits_.max_string) return fail(scan_errc::reply_too_large);
      if (pos_ >= s_.size()) return fail(scan_errc::malformed_reply);
      char const c = s_[pos_++];
      if (c == '"') return {};
      if (static_cast<unsigned char>(c) < 0x20) return fail(scan_errc::malformed_reply);
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return fail(scan_errc::malformed_reply);
      switch (char const e = s_[pos_++]) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return fail(scan_errc::malformed_reply);
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(scan_errc::malformed_reply);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            if (!literal("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return fail(scan_errc::malformed_reply);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          text::append_utf8(out, static_cast<char32_t>(cp));
          break;
        }
        default: return fail(scan_errc::malformed_reply);
      }
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  result<void> number(json_value& out) {
    std::size_t const start = pos_;
    auto digits = [&] {
      std::size_t n = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_, ++n;
      return n;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    std::size_t const int_start = pos_;
    std::size_t const n = digits();
    if (n == 0 || (n > 1 && s_[int_start] == '0')) return fail(scan_errc::malformed_reply);
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return fail(scan_errc::malformed_reply);
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return fail(scan_errc::malformed_reply);
    }
    double v = 0;
    auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (ec != std::errc() || end != s_.data() + pos_ || !std::isfinite(v)) return fail(scan_errc::malformed_reply);
    out.k = json_value::kind::number;
    out.number = v;
    return {};
  }

  std::string_view s_;
  json_limits const& limits_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
};

}  // namespace

result<json_value> parse_json(std::string_view text, json_limits limits) {
  return reader(text, limits).document();
}

}  // namespace mailroom::filter::detail
