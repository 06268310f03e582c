// The table of commands and tests (RFC 5228 and the extensions named in script.hpp).
#include "sieve/detail/spec.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::sieve::detail {
namespace {

using vk = value_kind;
using tg = tag_group;

constexpr std::uint32_t rel = bit(extension::relational);

std::vector<tag_spec> join(std::initializer_list<std::vector<tag_spec>> parts) {
  std::vector<tag_spec> out;
  for (auto const& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<tag_spec> const comparator{{":comparator", vk::string, 0, tg::comparator}};
std::vector<tag_spec> const match_type{{":is", vk::none, 0, tg::match},
                                       {":contains", vk::none, 0, tg::match},
                                       {":matches", vk::none, 0, tg::match},
                                       {":value", vk::string, rel, tg::match},
                                       {":count", vk::string, rel, tg::match}};
std::vector<tag_spec> const address_part{{":all", vk::none, 0, tg::address_part},
                                         {":localpart", vk::none, 0, tg::address_part},
                                         {":domain", vk::none, 0, tg::address_part},
                                         {":user", vk::none, bit(extension::subaddress), tg::address_part},
                                         {":detail", vk::none, bit(extension::subaddress), tg::address_part}};
std::vector<tag_spec> const index{{":index", vk::number, bit(extension::index)},
                                  {":last", vk::none, bit(extension::index)}};
std::vector<tag_spec> const flags{{":flags", vk::strings, bit(extension::imap4flags)}};
std::vector<tag_spec> const copy{{":copy", vk::none, bit(extension::copy)}};

std::vector<command_spec> const& table() {
  static std::vector<command_spec> const t = [] {
    std::uint32_t const date = bit(extension::date);
    std::uint32_t const vars = bit(extension::variables);
    std::uint32_t const flag = bit(extension::imap4flags);
    std::vector<command_spec> v;
    // commands
    v.push_back({"require", false, 0, {}, {"L"}});
    v.push_back({"if", false, 0, {}, {""}, 1, true});
    v.push_back({"elsif", false, 0, {}, {""}, 1, true});
    v.push_back({"else", false, 0, {}, {""}, 0, true});
    v.push_back({"stop", false, 0, {}, {""}});
    v.push_back({"keep", false, 0, flags, {""}});
    v.push_back({"discard", false, 0, {}, {""}});
    v.push_back({"fileinto", false, bit(extension::fileinto),
                 join({copy, flags, {{":create", vk::none, bit(extension::mailbox)}}}), {"S"}});
    v.push_back({"redirect", false, 0, copy, {"S"}});
    v.push_back({"reject", false, bit(extension::reject), {}, {"S"}});
    v.push_back({"ereject", false, bit(extension::ereject), {}, {"S"}});
    v.push_back({"set", false, vars,
                 {{":lower", vk::none, 0, tg::precedence40},
                  {":upper", vk::none, 0, tg::precedence40},
                  {":lowerfirst", vk::none, 0, tg::precedence30},
                  {":upperfirst", vk::none, 0, tg::precedence30},
                  {":quotewildcard", vk::none, 0, tg::precedence20},
                  {":length", vk::none, 0, tg::precedence10}},
                 {"SS"}});
    for (std::string_view n : {"setflag", "addflag", "removeflag"}) v.push_back({n, false, flag, {}, {"L", "SL"}});
    v.push_back({"vacation", false, bit(extension::vacation),
                 {{":days", vk::number},
                  {":seconds", vk::number, bit(extension::vacation_seconds)},
                  {":subject", vk::string},
                  {":from", vk::string},
                  {":addresses", vk::strings},
                  {":mime", vk::none},
                  {":handle", vk::string}},
                 {"S"}});
    // tests
    v.push_back({"address", true, 0, join({comparator, address_part, match_type, index}), {"LL"}});
    v.push_back({"envelope", true, bit(extension::envelope), join({comparator, address_part, match_type}), {"LL"}});
    v.push_back({"header", true, 0, join({comparator, match_type, index}), {"LL"}});
    v.push_back({"exists", true, 0, {}, {"L"}});
    v.push_back({"size", true, 0, {{":over", vk::none, 0, tg::size}, {":under", vk::none, 0, tg::size}}, {"N"}});
    v.push_back({"not", true, 0, {}, {""}, 1});
    v.push_back({"allof", true, 0, {}, {""}, 2});
    v.push_back({"anyof", true, 0, {}, {""}, 2});
    v.push_back({"true", true, 0, {}, {""}});
    v.push_back({"false", true, 0, {}, {""}});
    v.push_back({"body", true, bit(extension::body),
                 join({comparator, match_type,
                       {{":raw", vk::none, 0, tg::transform},
                        {":content", vk::strings, 0, tg::transform},
                        {":text", vk::none, 0, tg::transform}}}),
                 {"L"}});
    v.push_back({"string", true, vars, join({comparator, match_type}), {"LL"}});
    v.push_back({"hasflag", true, flag, join({comparator, match_type}), {"L", "LL"}});
    std::vector<tag_spec> const zone{{":zone", vk::string, 0, tg::zone}, {":originalzone", vk::none, 0, tg::zone}};
    v.push_back({"date", true, date, join({zone, comparator, match_type, index}), {"SSL"}});
    v.push_back({"currentdate", true, date, join({{zone.front()}, comparator, match_type}), {"SL"}});
    v.push_back({"mailboxexists", true, bit(extension::mailbox), {}, {"L"}});
    return v;
  }();
  return t;
}

}  // namespace

command_spec const* find_spec(std::string_view name, bool is_test) noexcept {
  for (auto const& s : table())
    if (s.is_test == is_test && s.name == name) return &s;
  return nullptr;
}

std::uint32_t extension_bit(std::string_view name) noexcept {
  struct entry {
    std::string_view name;
    std::uint32_t bit;
  };
  static constexpr entry names[] = {
      {"fileinto", bit(extension::fileinto)},
      {"reject", bit(extension::reject)},
      {"ereject", bit(extension::ereject)},
      {"envelope", bit(extension::envelope)},
      {"body", bit(extension::body)},
      {"variables", bit(extension::variables)},
      {"relational", bit(extension::relational)},
      {"subaddress", bit(extension::subaddress)},
      {"copy", bit(extension::copy)},
      {"imap4flags", bit(extension::imap4flags)},
      {"date", bit(extension::date)},
      {"index", bit(extension::index)},
      {"mailbox", bit(extension::mailbox)},
      {"vacation", bit(extension::vacation)},
      {"vacation-seconds", bit(extension::vacation_seconds) | bit(extension::vacation)},
      {"encoded-character", bit(extension::encoded_character)},
      {"comparator-i;ascii-numeric", bit(extension::comparator_numeric)},
      {"comparator-i;octet", always},
      {"comparator-i;ascii-casemap", always},
  };
  for (auto const& e : names)
    if (e.name == name) return e.bit;
  return 0;
}

}  // namespace mailroom::sieve::detail
