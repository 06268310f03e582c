// libFuzzer target: the SPF record and macro syntax (what a hostile domain publishes), without DNS.
// The first input byte picks small limits or the defaults; the rest is a TXT record, also read as a
// macro-string in each of its three uses and expanded with values cut from the input.
// Properties checked: no crash; a parsed record respects the limits and holds only in-range
// prefix lengths and networks of the right family; a record that parses still parses with its
// spacing changed; a domain expansion is a valid DNS name of at most 253 octets; an explanation
// never exceeds its cap.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/filter/spf.hpp"

using namespace mailroom::filter::spf;

namespace {

void check_name(std::string const& name) {
  if (name.empty() || name.size() > 253 || name.back() == '.') std::abort();
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) std::abort();
      label = 0;
    } else if (++label > 63) {
      std::abort();
    }
  }
  if (label == 0) std::abort();
}

void check_record(record const& r, limits const& lim) {
  if (r.mechanisms.size() + r.unknown_modifiers + (r.redirect ? 1 : 0) + (r.exp ? 1 : 0) > lim.max_terms) std::abort();
  for (auto const& m : r.mechanisms) {
    if (m.cidr4 > 32 || m.cidr6 > 128) std::abort();
    if (m.kind == mechanism_kind::ip4 && !m.network.is_v4()) std::abort();
    if (m.kind == mechanism_kind::ip6 && !m.network.is_v6()) std::abort();
    if ((m.kind == mechanism_kind::include || m.kind == mechanism_kind::exists) && !m.domain) std::abort();
    if (m.domain && (m.domain->uses('c') || m.domain->uses('r') || m.domain->uses('t'))) std::abort();
    if (m.text.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  limits lim;
  if (data[0] & 1) {
    lim.max_record = 256;
    lim.max_terms = 8;
  }
  std::string_view in(reinterpret_cast<char const*>(data) + 1, size - 1);

  auto rec = parse_record(in, lim);
  if (rec) {
    if (in.size() > lim.max_record || !is_spf_record(in)) std::abort();
    check_record(*rec, lim);
    // Extra spaces between terms and at the end change nothing.
    std::string spaced(in.substr(0, 6));
    for (char c : in.substr(6)) spaced += c == ' ' ? std::string("  ") : std::string(1, c);
    spaced += ' ';
    limits roomy = lim;
    roomy.max_record = spaced.size();
    auto again = parse_record(spaced, roomy);
    if (!again || again->mechanisms.size() != rec->mechanisms.size()) std::abort();
  }

  macro_values v;
  std::size_t third = in.size() / 3;
  v.s = std::string(in.substr(0, third)) + "@" + std::string(in.substr(third, third));
  v.l = std::string(in.substr(0, third));
  v.o = v.d = v.h = std::string(in.substr(third, third));
  v.i = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2";
  v.c = "2001:db8::1";
  v.p = "unknown";
  v.r = std::string(in.substr(2 * third));
  v.t = "1700000000";
  v.v = "ip6";
  for (auto use : {macro_use::domain, macro_use::modifier, macro_use::explanation}) {
    auto m = parse_macro_string(in, use);
    if (!m) continue;
    if (use == macro_use::domain) {
      if (in.empty()) std::abort();
      if (auto name = expand_domain(*m, v)) check_name(*name);
    }
    if (expand_text(*m, v, 300).size() > 300) std::abort();
  }
  return 0;
}
