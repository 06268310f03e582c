#include "mailroom/imap/parser.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::imap {
namespace {

constexpr char literal_mark = '\0';  // never inside a line: NUL there is refused

bool is_atom_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > ' ' && u != 0x7f && c != '(' && c != ')' && c != '"' && c != '{';
}

// A literal announcement at the end of a line: "{12}", "{12+}", "~{12}". Returns where it
// starts, the size (nullopt when the digits are unusable) and the flags.
struct literal_spec {
  std::size_t start;
  std::optional<std::uint64_t> size;
  bool nonsync;
  bool binary;
};
std::optional<literal_spec> literal_at_end(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  auto open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  auto inner = line.substr(open + 1, line.size() - open - 2);
  bool nonsync = !inner.empty() && inner.back() == '+';
  if (nonsync) inner.remove_suffix(1);
  if (inner.empty() || inner.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  literal_spec spec{open, inner.size() > 19 ? std::nullopt : text::parse_uint(inner), nonsync, false};
  if (open > 0 && line[open - 1] == '~') {
    spec.binary = true;
    --spec.start;
  }
  return spec;
}

class tokenizer {
 public:
  tokenizer(std::string_view s, std::vector<std::string>& literals, std::vector<bool> const& binary, std::size_t max_depth)
      : s_(s), literals_(literals), binary_(binary), max_depth_(max_depth) {}

  std::string error;

  bool at_end() const { return pos_ >= s_.size(); }

  std::optional<std::string> atom() {
    auto start = pos_;
    while (pos_ < s_.size() && is_atom_char(s_[pos_]) && s_[pos_] != literal_mark) ++pos_;
    if (pos_ == start) return std::nullopt;
    return std::string(s_.substr(start, pos_ - start));
  }

  bool space() {
    if (pos_ < s_.size() && s_[pos_] == ' ') {
      ++pos_;
      return true;
    }
    return false;
  }

  // One argument value; sets error and returns nullopt when malformed.
  std::optional<value> parse_value(std::size_t depth) {
    if (at_end()) return fail("Missing argument");
    char c = s_[pos_];
    if (c == '(') {
      if (depth >= max_depth_) return fail("Lists nested too deeply");
      ++pos_;
      value v;
      v.k = value::kind::list;
      if (pos_ < s_.size() && s_[pos_] == ')') {
        ++pos_;
        return v;
      }
      for (;;) {
        auto item = parse_value(depth + 1);
        if (!item) return std::nullopt;
        v.items.push_back(std::move(*item));
        if (pos_ < s_.size() && s_[pos_] == ')') {
          ++pos_;
          return v;
        }
        if (!space()) return fail("Expected space or ')' in a list");
      }
    }
    if (c == '"') return quoted();
    if (c == literal_mark) return literal();
    return bracketed_atom();
  }

 private:
  std::nullopt_t fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return std::nullopt;
  }

  std::optional<value> quoted() {
    ++pos_;
    value v;
    v.k = value::kind::string;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return v;
      if (c == '\\') {
        if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\\')) return fail("Bad escape in quoted string");
        v.text += s_[pos_++];
        continue;
      }
      if (c == '\r' || c == '\n') return fail("Line break in quoted string");
      v.text += c;
    }
    return fail("Unterminated quoted string");
  }

  std::optional<value> literal() {
    ++pos_;
    auto end = s_.find(literal_mark, pos_);
    auto idx = text::parse_uint(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    value v;
    v.k = value::kind::string;
    v.literal = true;
    v.binary = binary_[*idx];
    v.text = std::move(literals_[*idx]);
    return v;
  }

  // Atoms, with fetch-att sections kept whole: BODY[HEADER.FIELDS (A B)]<0.100>.
  std::optional<value> bracketed_atom() {
    auto start = pos_;
    int brackets = 0;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '[') {
        ++brackets;
      } else if (c == ']') {
        if (brackets == 0) break;
        --brackets;
      } else if (brackets == 0 && (!is_atom_char(c) || c == literal_mark)) {
        break;
      } else if (brackets > 0 && (c == literal_mark || c == '\r' || c == '\n' || c == '"')) {
        return fail("Bad character in a section");
      }
      ++pos_;
      if (c == ']' && brackets == 0 && pos_ < s_.size() && s_[pos_] == '<') {
        auto close = s_.find('>', pos_);
        if (close == std::string_view::npos) return fail("Unterminated partial <...>");
        pos_ = close + 1;
        break;
      }
    }
    if (brackets != 0) return fail("Unbalanced brackets");
    if (pos_ == start) return fail("Unexpected character");
    value v;
    v.text = std::string(s_.substr(start, pos_ - start));
    if (text::iequals(v.text, "NIL")) v.k = value::kind::nil;
    return v;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::vector<std::string>& literals_;
  std::vector<bool> const& binary_;
  std::size_t max_depth_;
};

}  // namespace

bool value::is_atom(std::string_view upper) const noexcept { return k == kind::atom && text::iequals(text, upper); }

void parser::feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

void parser::discard_buffered() noexcept {
  buf_.clear();
  pos_ = 0;
}

parser::event parser::error(std::string message, bool fatal) {
  event e;
  e.k = event::kind::error;
  e.message = std::move(message);
  e.fatal = fatal;
  // The tag, when the command got that far: up to the first space.
  auto sp = cmd_.find(' ');
  if (sp != std::string::npos && sp > 0 && cmd_.find(literal_mark) > sp) e.tag = cmd_.substr(0, sp);
  cmd_.clear();
  literals_.clear();
  literal_binary_.clear();
  literal_left_.reset();
  total_ = 0;
  return e;
}

std::optional<bool> parser::take_done() {
  auto lf = buf_.find('\n', pos_);
  if (lf == std::string::npos) {
    if (buf_.size() - pos_ > limits_.max_line) {
      pos_ = buf_.size();
      return std::nullopt;
    }
    return false;
  }
  std::string_view line(buf_.data() + pos_, lf - pos_);
  pos_ = lf + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (text::iequals(line, "DONE")) return true;
  return std::nullopt;
}

std::optional<std::string> parser::take_line() {
  auto lf = buf_.find('\n', pos_);
  if (lf == std::string::npos) return std::nullopt;
  std::string line = buf_.substr(pos_, std::min(lf - pos_, limits_.max_line));
  pos_ = lf + 1;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

parser::event parser::next() {
  for (;;) {
    if (literal_left_) {
      auto take = std::min(*literal_left_, buf_.size() - pos_);
      literals_.back().append(buf_, pos_, take);
      pos_ += take;
      *literal_left_ -= take;
      if (*literal_left_ > 0) return {};
      literal_left_.reset();
      continue;
    }
    auto lf = buf_.find('\n', pos_);
    if (skipping_) {
      if (lf == std::string::npos) {
        pos_ = buf_.size();
        return {};
      }
      pos_ = lf + 1;
      skipping_ = false;
      return error("Line too long", false);
    }
    if (lf == std::string::npos) {
      if (buf_.size() - pos_ > limits_.max_line) {  // drop it as it comes, answer at its end
        pos_ = buf_.size();
        skipping_ = true;
      }
      return {};
    }
    std::string_view line(buf_.data() + pos_, lf - pos_);
    pos_ = lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits_.max_line) return error("Line too long", false);
    if (line.find('\0') != std::string_view::npos) {
      cmd_.append(line.substr(0, line.find('\0')));
      return error("NUL octets are only allowed in literal8", false);
    }
    total_ += line.size();
    auto spec = literal_at_end(line);
    if (!spec) {
      cmd_.append(line);
      if (total_ > limits_.max_command) return error("Command too long", false);
      return finish_command();
    }
    cmd_.append(line.substr(0, spec->start));
    // The limit depends on the command: APPEND carries messages.
    auto first_sp = cmd_.find(' ');
    bool append = false;
    if (first_sp != std::string::npos) {
      auto rest = std::string_view(cmd_).substr(first_sp + 1);
      if (text::istarts_with(rest, "UID ")) rest.remove_prefix(4);
      append = text::istarts_with(rest, "APPEND ");
    }
    auto limit = append ? limits_.max_append_literal : limits_.max_literal;
    bool too_big = !spec->size || *spec->size > limit || total_ + *spec->size > limits_.max_command;
    if (spec->nonsync && !too_big && !limits_.literal_plus && *spec->size > limits_.max_nonsync_literal)
      return error("Non-synchronizing literal too large (LITERAL-)", true);
    if (too_big) {
      if (spec->nonsync) return error("Literal too large", true);  // its bytes are on the way
      return error(append ? "[TOOBIG] Message too large" : "Literal too large", false);
    }
    total_ += *spec->size;
    cmd_ += literal_mark;
    cmd_ += std::to_string(literals_.size());
    cmd_ += literal_mark;
    literals_.emplace_back();
    literals_.back().reserve(std::min<std::uint64_t>(*spec->size, 1 << 20));
    literal_binary_.push_back(spec->binary);
    literal_left_ = *spec->size;
    if (!spec->nonsync) {
      event e;
      e.k = event::kind::continuation;
      return e;
    }
  }
}

parser::event parser::finish_command() {
  tokenizer t(cmd_, literals_, literal_binary_, limits_.max_depth);
  event e;
  e.k = event::kind::command;
  auto tag = t.atom();
  if (!tag || tag->find('+') != std::string::npos || tag->find('[') != std::string::npos) return error("Missing or bad tag", false);
  e.cmd.tag = *tag;
  if (!t.space()) return error("Missing command", false);
  auto name = t.atom();
  if (!name) return error("Missing command", false);
  e.cmd.name = text::to_upper(*name);
  if (e.cmd.name == "UID") {
    e.cmd.uid = true;
    if (!t.space() || !(name = t.atom())) return error("Missing command after UID", false);
    e.cmd.name = text::to_upper(*name);
  }
  while (!t.at_end()) {
    if (!t.space()) return error("Expected a space between arguments", false);
    auto v = t.parse_value(0);
    if (!v) return error(t.error, false);
    e.cmd.args.push_back(std::move(*v));
  }
  cmd_.clear();
  literals_.clear();
  literal_binary_.clear();
  total_ = 0;
  return e;
}

std::optional<std::vector<seq_range>> parse_sequence_set(std::string_view s, std::uint32_t max) {
  std::vector<seq_range> out;
  auto number = [&](std::string_view n) -> std::optional<std::uint32_t> {
    if (n == "*") return max;
    if (n.empty() || n.size() > 10 || n[0] == '0') return std::nullopt;
    auto v = text::parse_uint(n, UINT32_MAX);
    if (!v) return std::nullopt;
    return static_cast<std::uint32_t>(*v);
  };
  if (s.empty()) return std::nullopt;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto part = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    if (comma != std::string_view::npos && s.empty()) return std::nullopt;
    auto colon = part.find(':');
    auto a = number(part.substr(0, colon));
    auto b = colon == std::string_view::npos ? a : number(part.substr(colon + 1));
    if (!a || !b) return std::nullopt;
    if (*a > *b) std::swap(*a, *b);
    if (*b == 0) continue;  // "*" in an empty mailbox
    out.push_back({std::max<std::uint32_t>(*a, 1), *b});
    if (out.size() > 100000) return std::nullopt;
  }
  std::sort(out.begin(), out.end(), [](auto const& x, auto const& y) { return x.first < y.first; });
  std::vector<seq_range> merged;
  for (auto const& r : out) {
    if (!merged.empty() && r.first <= merged.back().last + 1) merged.back().last = std::max(merged.back().last, r.last);
    else merged.push_back(r);
  }
  return merged;
}

bool contains(std::vector<seq_range> const& set, std::uint32_t n) noexcept {
  auto it = std::upper_bound(set.begin(), set.end(), n, [](std::uint32_t v, seq_range const& r) { return v < r.first; });
  return it != set.begin() && std::prev(it)->last >= n;
}

}  // namespace mailroom::imap
