#include "mailroom/store/types.hpp"

#include <algorithm>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::store {
namespace {
char const* describe(errc e) noexcept {
  switch (e) {
    case errc::no_such_mailbox: return "no such mailbox";
    case errc::mailbox_exists: return "mailbox already exists";
    case errc::invalid_name: return "invalid mailbox name";
    case errc::cannot: return "operation not permitted on this mailbox";
    case errc::has_children: return "mailbox has inferior mailboxes";
    case errc::over_quota: return "quota exceeded";
    case errc::no_such_message: return "no such message";
    case errc::too_many_keywords: return "too many keywords in this mailbox";
    case errc::no_such_account: return "no such account";
    case errc::corrupt: return "stored state is corrupt";
  }
  return nullptr;
}

bool keyword_less(std::string const& a, std::string const& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return text::to_lower(x) < text::to_lower(y); });
}

struct named_flag {
  std::string_view name;
  system_flag flag;
};
constexpr named_flag system_flags[] = {{"\\Seen", system_flag::seen},
                                       {"\\Answered", system_flag::answered},
                                       {"\\Flagged", system_flag::flagged},
                                       {"\\Deleted", system_flag::deleted},
                                       {"\\Draft", system_flag::draft}};

struct named_use {
  std::string_view name;
  special_use use;
};
constexpr named_use uses[] = {{"\\All", special_use::all},       {"\\Archive", special_use::archive},
                              {"\\Drafts", special_use::drafts}, {"\\Flagged", special_use::flagged},
                              {"\\Junk", special_use::junk},     {"\\Sent", special_use::sent},
                              {"\\Trash", special_use::trash}};
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.store", describe, "unknown store error");
  return instance;
}

bool valid_keyword(std::string_view k) noexcept {
  if (k.empty() || k.size() > 200) return false;
  for (unsigned char c : k) {
    // RFC 9051 atom-char: no CTL, SP, ( ) { % * " \ ] and 8-bit.
    if (c <= ' ' || c >= 0x7f) return false;
    if (c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == '\\' || c == ']') return false;
  }
  return true;
}

bool flag_set::has_keyword(std::string_view k) const noexcept {
  return std::any_of(keywords.begin(), keywords.end(), [&](auto const& x) { return text::iequals(x, k); });
}

void flag_set::add_keyword(std::string_view k) {
  if (has_keyword(k)) return;
  std::string s(k);
  keywords.insert(std::upper_bound(keywords.begin(), keywords.end(), s, keyword_less), std::move(s));
}

void flag_set::remove_keyword(std::string_view k) {
  std::erase_if(keywords, [&](auto const& x) { return text::iequals(x, k); });
}

void flag_set::add(flag_set const& o) {
  system |= o.system;
  for (auto const& k : o.keywords) add_keyword(k);
}

void flag_set::remove(flag_set const& o) {
  system &= static_cast<std::uint8_t>(~o.system);
  for (auto const& k : o.keywords) remove_keyword(k);
}

bool flag_set::operator==(flag_set const& o) const {
  if (system != o.system || keywords.size() != o.keywords.size()) return false;
  for (std::size_t i = 0; i < keywords.size(); ++i)
    if (!text::iequals(keywords[i], o.keywords[i])) return false;
  return true;
}

bool flag_set::add_imap(std::string_view f) {
  if (!f.empty() && f.front() == '\\') {
    for (auto const& s : system_flags)
      if (text::iequals(s.name, f)) {
        set(s.flag);
        return true;
      }
    return false;  // \Recent, \* and unknown system flags
  }
  if (!valid_keyword(f)) return false;
  add_keyword(f);
  return true;
}

std::string flag_set::to_imap() const {
  std::string out;
  for (auto const& s : system_flags)
    if (has(s.flag)) {
      if (!out.empty()) out += ' ';
      out += s.name;
    }
  for (auto const& k : keywords) {
    if (!out.empty()) out += ' ';
    out += k;
  }
  return out;
}

std::string_view to_imap(special_use u) noexcept {
  for (auto const& n : uses)
    if (n.use == u) return n.name;
  return {};
}

std::optional<special_use> parse_special_use(std::string_view imap) noexcept {
  for (auto const& n : uses)
    if (text::iequals(n.name, imap)) return n.use;
  return std::nullopt;
}

namespace {
constexpr std::uint16_t bit_of(char letter) noexcept {
  auto pos = rights::all.find(letter);
  return pos == std::string_view::npos ? 0 : static_cast<std::uint16_t>(1u << pos);
}
constexpr std::uint16_t obsolete_c = bit_of('k') | bit_of('x');
constexpr std::uint16_t obsolete_d = bit_of('x') | bit_of('t') | bit_of('e');
}  // namespace

std::optional<rights> rights::parse(std::string_view letters) {
  rights out;
  for (char c : letters) {
    std::uint16_t b = c == 'c' ? obsolete_c : c == 'd' ? obsolete_d : bit_of(c);
    if (b == 0) return std::nullopt;
    out.bits_ |= b;
  }
  return out;
}

rights rights::full() {
  rights out;
  out.bits_ = static_cast<std::uint16_t>((1u << all.size()) - 1);
  return out;
}

bool rights::has(char letter) const noexcept {
  std::uint16_t b = letter == 'c' ? obsolete_c : letter == 'd' ? obsolete_d : bit_of(letter);
  return b != 0 && (bits_ & b) == b;
}

rights& rights::add(rights o) noexcept {
  bits_ |= o.bits_;
  return *this;
}

rights& rights::remove(rights o) noexcept {
  bits_ &= static_cast<std::uint16_t>(~o.bits_);
  return *this;
}

std::string rights::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (bits_ & (1u << i)) out += all[i];
  return out;
}

bool valid_acl_identifier(std::string_view id) noexcept {
  if (id.size() > 255) return false;
  if (!id.empty() && id.front() == '-') id.remove_prefix(1);
  if (id.empty() || id.front() == '-' || !text::is_valid_utf8(id)) return false;
  for (unsigned char c : id)
    if (c <= ' ' || c == 0x7f) return false;
  return true;
}

rights effective_rights(std::vector<acl_entry> const& acl, std::string_view owner, std::string_view user) {
  if (user == owner) return rights::full();
  auto applies = [&](std::string_view id) { return id == user || id == "authenticated" || id == "anyone"; };
  rights granted, denied;
  for (auto const& e : acl) {
    std::string_view id = e.identifier;
    if (id.starts_with('-')) {
      if (applies(id.substr(1))) denied.add(e.granted);
    } else if (applies(id)) {
      granted.add(e.granted);
    }
  }
  return granted.remove(denied);
}

result<std::string> normalize_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == delimiter || name.back() == delimiter)
    return fail(errc::invalid_name);
  if (!text::is_valid_utf8(name)) return fail(errc::invalid_name);
  for (std::size_t i = 0; i < name.size(); ++i) {
    unsigned char c = name[i];
    if (c < ' ' || c == 0x7f) return fail(errc::invalid_name);
    if (c == delimiter && i + 1 < name.size() && name[i + 1] == delimiter) return fail(errc::invalid_name);
  }
  std::string out(name);
  auto first = name.substr(0, name.find(delimiter));
  if (text::iequals(first, "INBOX")) out.replace(0, 5, "INBOX");
  return out;
}

std::string_view parent_name(std::string_view name) noexcept {
  auto pos = name.rfind(delimiter);
  return pos == std::string_view::npos ? std::string_view{} : name.substr(0, pos);
}

}  // namespace mailroom::store
