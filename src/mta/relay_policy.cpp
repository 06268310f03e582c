#include "mailroom/mta/relay_policy.hpp"

#include "mailroom/core/text.hpp"

namespace mailroom::mta {

namespace {
std::string normalise(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return text::to_lower(d);
}
}  // namespace

relay_policy::relay_policy(relay_policy_options opts) : opts_(std::move(opts)) {
  for (auto* list : {&opts_.local_domains, &opts_.relay_domains})
    for (auto& d : *list) d = normalise(d);
}

bool relay_policy::listed(std::vector<std::string> const& list, std::string_view domain) {
  auto d = normalise(domain);
  for (auto const& entry : list) {
    if (entry == d) return true;
    // ".example.org": any subdomain of example.org
    if (!entry.empty() && entry.front() == '.' && d.size() > entry.size() &&
        d.compare(d.size() - entry.size(), entry.size(), entry) == 0)
      return true;
  }
  return false;
}

bool relay_policy::is_local(std::string_view domain) const { return listed(opts_.local_domains, domain); }
bool relay_policy::is_relay(std::string_view domain) const { return listed(opts_.relay_domains, domain); }

bool relay_policy::is_trusted(smtp::session_info const& client) const {
  if (client.auth && opts_.authenticated_may_relay) return true;
  auto a = client.remote.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    for (auto const& n : opts_.trusted_v4)
      if ((a.to_v4().to_uint() & n.netmask().to_uint()) == n.network().to_uint()) return true;
  } else {
    for (auto const& n : opts_.trusted_v6) {
      auto hosts = asio::ip::network_v6(a.to_v6(), n.prefix_length()).canonical();
      if (hosts == n.canonical()) return true;
    }
  }
  return false;
}

std::optional<smtp::reply> relay_policy::check(smtp::session_info const& client, address const& rcpt) const {
  if (is_trusted(client)) return std::nullopt;
  if (rcpt.domain.empty()) return std::nullopt;  // <postmaster>: always ours (RFC 5321 4.5.1)
  if (!is_local(rcpt.domain) && !is_relay(rcpt.domain))
    return smtp::reply{554, {5, 7, 1}, "<" + rcpt.to_string() + ">: Relay access denied"};
  if (rcpt.local.find_first_of("%!@") != std::string::npos)
    return smtp::reply{554, {5, 7, 1}, "<" + rcpt.to_string() + ">: Relay access denied (routing in the local part)"};
  return std::nullopt;
}

}  // namespace mailroom::mta
