// mailroomd's filter chains from [filters] (config.hpp): one for mx/lmtp listeners, one for
// submission listeners, built from the library's filters (mailroom/filter/checks.hpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/dns.hpp"
#include "mailroom/filter/filter.hpp"
#include "mailroom/net/dns/resolver.hpp"

namespace mailroomd {

struct filter_chains {
  std::unique_ptr<mailroom::filter::dns> dns;  ///< what the checks resolve through (outlives them)
  std::vector<mailroom::filter::chain_entry> mx, submission;
  /// Listeners with their own `filters` list, by listener address.
  std::map<std::string, std::vector<mailroom::filter::chain_entry>> per_listener;
};

/// Throws std::runtime_error naming the [filters] entry that cannot be set up (a key file, the
/// public suffix list, a dnsbl site).
filter_chains build_filters(config const& c, mailroom::executor ex, mailroom::net::dns::resolver& resolver,
                            mailroom::log::logger const& logger);

}  // namespace mailroomd
