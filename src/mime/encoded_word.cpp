#include "mailroom/mime/encoded_word.hpp"

#include <array>
#include <cstdint>

#include "mailroom/core/text.hpp"
#include "mailroom/mime/transfer_encoding.hpp"

namespace mailroom::mime {
namespace {

enum class charset { unknown, utf8, cp1252, latin9 };

constexpr char32_t replacement = 0xFFFD;

// Windows-1252 0x80-0x9F; 0 marks the five undefined bytes.
constexpr std::array<char16_t, 32> cp1252_high = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// Length of the well-formed UTF-8 sequence at s[i], or 0 when the byte there does not start one.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  std::size_t len;
  char32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

// Appends s as UTF-8: well-formed sequences as they are, every other byte as U+FFFD.
// ctl::space turns NUL, CR and LF into a space (decoded words); ctl::unfold drops CR and LF and
// turns NUL into a space (raw text); ctl::keep passes them through.
enum class ctl { keep, space, unfold };
void append_utf8(std::string& out, std::string_view s, ctl mode) {
  for (std::size_t i = 0; i < s.size();) {
    auto n = utf8_sequence(s, i);
    if (n == 0) {
      text::append_utf8(out, replacement);
      ++i;
      continue;
    }
    if (n == 1 && mode != ctl::keep && (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')) {
      if (mode == ctl::space || s[i] == '\0') out += ' ';
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
}

void append_single_byte(std::string& out, std::string_view s, charset cs, ctl mode) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      if (mode != ctl::keep && (c == 0 || c == '\r' || c == '\n')) out += ' ';
      else out += ch;
      continue;
    }
    char32_t cp = c;
    if (cs == charset::cp1252 && c < 0xA0) {
      cp = cp1252_high[c - 0x80];
      if (cp == 0) cp = replacement;
    } else if (cs == charset::latin9) {
      switch (c) {
        case 0xA4: cp = 0x20AC; break;
        case 0xA6: cp = 0x0160; break;
        case 0xA8: cp = 0x0161; break;
        case 0xB4: cp = 0x017D; break;
        case 0xB8: cp = 0x017E; break;
        case 0xBC: cp = 0x0152; break;
        case 0xBD: cp = 0x0153; break;
        case 0xBE: cp = 0x0178; break;
        default: break;
      }
    }
    text::append_utf8(out, cp);
  }
}

void convert(std::string& out, charset cs, std::string_view bytes, ctl mode) {
  if (cs == charset::utf8) append_utf8(out, bytes, mode);
  else append_single_byte(out, bytes, cs, mode);
}

charset lookup_charset(std::string_view name) {
  if (auto star = name.find('*'); star != std::string_view::npos) name = name.substr(0, star);  // RFC 2231
  if (name.empty() || name.size() > 40) return charset::unknown;
  auto n = text::to_lower(name);
  if (n == "utf-8" || n == "utf8") return charset::utf8;
  if (n == "us-ascii" || n == "ascii" || n == "us" || n == "ansi_x3.4-1968" || n == "iso646-us" ||
      n == "iso-8859-1" || n == "iso8859-1" || n == "iso_8859-1" || n == "latin1" || n == "latin-1" ||
      n == "l1" || n == "cp819" || n == "ibm819" || n == "iso-ir-100" || n == "windows-1252" || n == "cp1252" ||
      n == "x-cp1252")
    return charset::cp1252;
  if (n == "iso-8859-15" || n == "iso8859-15" || n == "iso_8859-15" || n == "latin-9" || n == "latin9" ||
      n == "l9")
    return charset::latin9;
  return charset::unknown;
}

bool is_lws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 2047 token characters, plus '.' (seen in "ansi_x3.4-1968") and '*' (RFC 2231 language).
bool is_charset_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= ' ' || u >= 0x7F) return false;
  switch (c) {
    case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':':
    case '"': case '/': case '[': case ']': case '?': case '=':
      return false;
    default:
      return true;
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Base64 as encoders write it in words: the standard alphabet, padding optional (some encoders
// drop it), stray bits of the last symbol ignored. Anything else fails.
bool decode_b(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  for (char c : in)
    if (base64_value(c) < 0) return false;
  out += decode_base64(in);
  return true;
}

bool decode_q(std::string_view in, std::string& out) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '=') {
      if (i + 2 >= in.size()) return false;
      int a = hex_value(in[i + 1]), b = hex_value(in[i + 2]);
      if (a < 0 || b < 0) return false;
      out += static_cast<char>(a * 16 + b);
      i += 2;
    } else {
      out += c;
    }
  }
  return true;
}

struct word {
  std::size_t end = 0;         ///< one past "?="
  std::string_view charset;
  char encoding = 0;
  std::string_view text;
};

// Matches "=?charset?X?text?=" at s[pos] (which is "=?"). Each scan stops at the first '?' it
// meets, so a run of failed candidates costs linear time overall.
std::optional<word> match_word(std::string_view s, std::size_t pos) {
  std::size_t i = pos + 2;
  auto cs_begin = i;
  while (i < s.size() && is_charset_char(s[i]) && i - cs_begin <= 64) ++i;
  if (i == cs_begin || i >= s.size() || s[i] != '?') return std::nullopt;
  word w;
  w.charset = s.substr(cs_begin, i - cs_begin);
  ++i;
  if (i + 1 >= s.size() || s[i + 1] != '?') return std::nullopt;
  w.encoding = s[i];
  i += 2;
  auto text_begin = i;
  while (i < s.size() && s[i] != '?') {
    auto c = static_cast<unsigned char>(s[i]);
    if (c <= ' ' || c >= 0x7F) return std::nullopt;  // encoded-text is printable ASCII without SPACE
    ++i;
  }
  if (i + 1 >= s.size() || s[i + 1] != '=') return std::nullopt;
  w.text = s.substr(text_begin, i - text_begin);
  w.end = i + 2;
  return w;
}

}  // namespace

std::optional<std::string> charset_to_utf8(std::string_view name, std::string_view bytes) {
  auto cs = lookup_charset(name);
  if (cs == charset::unknown) return std::nullopt;
  std::string out;
  out.reserve(bytes.size());
  convert(out, cs, bytes, ctl::keep);
  return out;
}

std::string decode_header_value(std::string_view raw) {
  while (!raw.empty() && is_lws(raw.front())) raw.remove_prefix(1);
  while (!raw.empty() && is_lws(raw.back())) raw.remove_suffix(1);
  std::string out;
  out.reserve(raw.size());
  std::string pending;                      // decoded bytes of adjacent words in one charset
  charset pending_cs = charset::unknown;
  auto flush = [&] {
    if (!pending.empty()) convert(out, pending_cs, pending, ctl::space);
    pending.clear();
    pending_cs = charset::unknown;
  };
  std::size_t text_start = 0;  // raw text not yet written starts here
  bool after_word = false;     // the text since text_start follows a decoded word
  std::size_t i = 0;
  while (i + 1 < raw.size()) {
    if (raw[i] != '=' || raw[i + 1] != '?') {
      ++i;
      continue;
    }
    auto w = match_word(raw, i);
    if (!w) {
      ++i;
      continue;
    }
    auto cs = lookup_charset(w->charset);
    std::string bytes;
    bool ok = cs != charset::unknown;
    if (ok) {
      if (w->encoding == 'B' || w->encoding == 'b') ok = decode_b(w->text, bytes);
      else if (w->encoding == 'Q' || w->encoding == 'q') ok = decode_q(w->text, bytes);
      else ok = false;
    }
    if (!ok) {  // left as written; skip the whole word so its "?=" does not start another
      i = w->end;
      continue;
    }
    auto gap = raw.substr(text_start, i - text_start);
    bool gap_is_space = true;
    for (char c : gap)
      if (!is_lws(c)) gap_is_space = false;
    if (!(after_word && gap_is_space)) {
      flush();
      append_utf8(out, gap, ctl::unfold);
    }
    if (pending_cs != cs) flush();
    pending_cs = cs;
    pending += bytes;
    i = w->end;
    text_start = i;
    after_word = true;
  }
  flush();
  append_utf8(out, raw.substr(text_start), ctl::unfold);
  return out;
}

}  // namespace mailroom::mime
