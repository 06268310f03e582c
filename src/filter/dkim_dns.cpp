// The key lookup's outcome as the verifier takes it (apart, so the DKIM core needs no resolver).
#include "mailroom/filter/dkim.hpp"
#include "mailroom/net/dns/resolver.hpp"

namespace mailroom::filter::dkim {

key_answer key_answer::from_lookup(mailroom::result<std::vector<std::string>> const& txt) {
  if (txt && !txt->empty()) return {outcome::found, *txt};
  if (txt || txt.error() == net::dns::errc::nxdomain || txt.error() == net::dns::errc::no_data)
    return {outcome::not_found, {}};
  return {outcome::temporary_failure, {}};
}

}  // namespace mailroom::filter::dkim
