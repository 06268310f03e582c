#include "mailroom/imap/response_parser.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::imap {

namespace {

bool is_status_word(std::string_view w) noexcept {
  return w == "OK" || w == "NO" || w == "BAD" || w == "BYE" || w == "PREAUTH";
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// An atom ends at SP, parentheses, a quote, a brace or a control character; "[...]" inside it
// is taken whole (fetch attributes such as BODY[HEADER.FIELDS (A B)]).
bool atom_end(char c) noexcept {
  return c == ' ' || c == '(' || c == ')' || c == '"' || c == '{' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

}  // namespace

void response_parser::feed(std::string_view bytes) { buf_.append(bytes); }

void response_parser::discard_buffered() noexcept {
  buf_.clear();
  pos_ = scanned_ = 0;
}

void response_parser::compact() {
  if (pos_ == 0) return;
  buf_.erase(0, pos_);
  scanned_ -= std::min(scanned_, pos_);
  pos_ = 0;
}

result<response_parser::event> response_parser::fail_with(errc e) {
  error_ = make_error_code(e);
  buf_.clear();
  buf_.shrink_to_fit();
  pos_ = scanned_ = 0;
  stack_.clear();
  cur_ = {};
  return fail(error_);
}

result<response_parser::event> response_parser::next() {
  if (error_) return fail(error_);
  event ev;
  for (;;) {
    if (st_ == state::literal) {
      if (literal_left_ == 0) {
        st_ = state::line;
        continue;
      }
      std::size_t const avail = buf_.size() - pos_;
      if (avail == 0) {
        compact();
        return ev;  // need_more
      }
      std::size_t const n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, literal_left_));
      std::string_view const piece(buf_.data() + pos_, n);
      pos_ += n;
      scanned_ = std::max(scanned_, pos_);
      literal_left_ -= n;
      if (mode_ == literal_mode::keep) {
        held_ += n;  // kept literals count against the response's bound
        if (held_ > limits_.max_literal + limits_.max_line) return fail_with(errc::response_too_large);
        stack_.back().items.back().text.append(piece);
      } else if (mode_ == literal_mode::stream) {
        ev.k = event::kind::literal_data;
        ev.data = piece;
        return ev;
      }
      continue;
    }

    // A line (the start of a response, or its rest after a literal).
    std::size_t const from = std::max(scanned_, pos_);
    std::size_t const nl = buf_.find('\n', from);
    if (nl == std::string::npos) {
      scanned_ = buf_.size();
      if (buf_.size() - pos_ > limits_.max_line + 1) return fail_with(errc::line_too_long);
      compact();
      return ev;  // need_more
    }
    std::size_t end = nl;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    if (end - pos_ > limits_.max_line) return fail_with(errc::line_too_long);
    std::string seg = buf_.substr(pos_, end - pos_);
    pos_ = scanned_ = nl + 1;
    held_ += seg.size();
    if (held_ > limits_.max_literal + limits_.max_line) return fail_with(errc::response_too_large);

    std::size_t i = 0;
    if (st_ == state::start) {
      auto h = head(seg, i);
      if (!h) return fail_with(static_cast<errc>(h.error().value()));
      if (*h) {
        ev.k = event::kind::response;
        ev.resp = std::move(cur_);
        cur_ = {};
        held_ = 0;
        ntokens_ = 0;
        return ev;
      }
      st_ = state::line;
    }
    auto t = tokens(seg, i, ev);
    if (!t) return fail_with(static_cast<errc>(t.error().value()));
    if (!*t) return ev;  // a literal was announced
    ev.k = event::kind::response;
    cur_.items = std::move(stack_.front().items);
    stack_.clear();
    ev.resp = std::move(cur_);
    cur_ = {};
    held_ = 0;
    ntokens_ = 0;
    st_ = state::start;
    return ev;
  }
}

// The response's start: "+", "*" or a tag, then a status or a data response's name.
result<bool> response_parser::head(std::string_view seg, std::size_t& i) {
  cur_ = {};
  cur_.line = std::string(seg);
  stack_.clear();
  stack_.emplace_back();
  stack_.back().k = value::kind::list;
  if (!seg.empty() && seg[0] == '+') {
    cur_.k = response::kind::continuation;
    cur_.text = std::string(seg.substr(seg.size() > 1 && seg[1] == ' ' ? 2 : 1));
    return true;
  }
  auto const word = [&]() {
    std::size_t const b = i;
    while (i < seg.size() && seg[i] != ' ') ++i;
    std::string_view w = seg.substr(b, i - b);
    if (i < seg.size()) ++i;  // the space
    return w;
  };
  std::string_view const tag = word();
  if (tag.empty()) return fail(errc::malformed_response);
  for (char c : tag)
    if (atom_end(c) || c == '+') return fail(errc::malformed_response);
  bool const untagged = tag == "*";
  cur_.k = untagged ? response::kind::untagged : response::kind::tagged;
  if (!untagged) cur_.tag = std::string(tag);
  std::string w = text::to_upper(word());
  if (w.empty()) return fail(errc::malformed_response);
  if (untagged && all_digits(w)) {
    auto n = text::parse_uint(w, UINT32_MAX);
    if (!n) return fail(errc::malformed_response);
    cur_.number = static_cast<std::uint32_t>(*n);
    w = text::to_upper(word());
    if (w.empty()) return fail(errc::malformed_response);
    for (char c : w)
      if (atom_end(c)) return fail(errc::malformed_response);
    cur_.name = std::move(w);
    return false;
  }
  if (is_status_word(w)) {
    cur_.status = std::move(w);
    std::string_view rest = seg.substr(i);
    if (!rest.empty() && rest[0] == '[') {
      auto const close = rest.find(']');
      if (close == std::string_view::npos) return fail(errc::malformed_response);
      cur_.code = std::string(rest.substr(1, close - 1));
      rest.remove_prefix(close + 1);
      if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    }
    cur_.text = std::string(rest);
    return true;
  }
  if (!untagged) return fail(errc::malformed_response);  // a tagged response is a status
  for (char c : w)
    if (atom_end(c)) return fail(errc::malformed_response);
  cur_.name = std::move(w);
  return false;
}

// Tokens from seg[i..]. True at the end of the response; false when a literal was announced
// (ev is then the literal event).
result<bool> response_parser::tokens(std::string_view seg, std::size_t i, event& ev) {
  auto const push = [&](value v) -> result<void> {
    if (++ntokens_ > limits_.max_tokens) return fail(errc::response_too_large);
    stack_.back().items.push_back(std::move(v));
    return {};
  };
  while (i < seg.size()) {
    char const c = seg[i];
    if (c == ' ') {
      ++i;
    } else if (c == '(') {
      if (stack_.size() > limits_.max_depth) return fail(errc::nesting_too_deep);
      if (++ntokens_ > limits_.max_tokens) return fail(errc::response_too_large);
      stack_.emplace_back();
      stack_.back().k = value::kind::list;
      ++i;
    } else if (c == ')') {
      if (stack_.size() < 2) return fail(errc::malformed_response);
      value v = std::move(stack_.back());
      stack_.pop_back();
      stack_.back().items.push_back(std::move(v));
      ++i;
    } else if (c == '"') {
      value v;
      v.k = value::kind::string;
      ++i;
      bool closed = false;
      while (i < seg.size()) {
        char d = seg[i++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\') {
          if (i >= seg.size()) break;
          d = seg[i++];
        }
        v.text += d;
      }
      if (!closed) return fail(errc::malformed_response);
      if (auto p = push(std::move(v)); !p) return fail(p.error());
    } else if (c == '{' || (c == '~' && i + 1 < seg.size() && seg[i + 1] == '{')) {
      bool const binary = c == '~';
      std::size_t const open = i + (binary ? 1 : 0);
      auto const close = seg.find('}', open);
      // The announcement ends the line: the octets follow the line end.
      if (close == std::string_view::npos || close + 1 != seg.size()) return fail(errc::malformed_response);
      std::string_view const digits = seg.substr(open + 1, close - open - 1);
      if (!all_digits(digits) || digits.size() > 20) return fail(errc::malformed_response);
      auto n = text::parse_uint(digits);
      if (!n || *n > limits_.max_literal) return fail(errc::literal_too_large);
      ev.k = event::kind::literal;
      ev.literal_size = *n;
      auto const& items = stack_.back().items;
      if (!items.empty() && items.back().k == value::kind::atom) ev.key = items.back().text;
      ev.in_fetch = cur_.name == "FETCH" && stack_.size() == 2;
      value v;
      v.k = value::kind::string;
      v.literal = true;
      v.binary = binary;
      if (auto p = push(std::move(v)); !p) return fail(p.error());
      literal_left_ = *n;
      mode_ = literal_mode::keep;
      st_ = state::literal;
      return false;
    } else {
      std::size_t const b = i;
      while (i < seg.size() && !atom_end(seg[i])) {
        if (seg[i] == '[') {
          auto const close = seg.find(']', i);
          if (close == std::string_view::npos) return fail(errc::malformed_response);
          i = close + 1;
        } else {
          ++i;
        }
      }
      if (i == b) return fail(errc::malformed_response);  // a control character or a stray '}'
      value v;
      std::string_view const a = seg.substr(b, i - b);
      if (text::iequals(a, "NIL")) v.k = value::kind::nil;
      else v.text = std::string(a);
      if (auto p = push(std::move(v)); !p) return fail(p.error());
    }
  }
  if (stack_.size() != 1) return fail(errc::malformed_response);  // an unclosed list
  return true;
}

}  // namespace mailroom::imap
