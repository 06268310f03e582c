// The transport map: which delivery_target gets a recipient, by its domain (local store, MX
// lookup, a smarthost, an LMTP server, discard), in the spirit of Postfix's transport(5).
//
// Contract: routes are tried in order; a pattern is a domain ("example.org", matched without
// regard to case and a trailing dot), ".example.org" for its subdomains, or "*" for any domain.
// A recipient no route matches goes to the fallback target (nullptr: refused with 550 5.1.2).
// group_key() keeps recipients of different routes in different deliveries, then defers to the
// chosen target's own grouping, so the queue never hands one delivery recipients of two routes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"

namespace mailroom::mta {

class router final : public delivery::delivery_target, public std::enable_shared_from_this<router> {
 public:
  struct route {
    std::string pattern;
    std::shared_ptr<delivery::delivery_target> target;
  };
  router(std::vector<route> routes, std::shared_ptr<delivery::delivery_target> fallback);

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx, address const& from) override;
  std::string group_key(address const& rcpt) const override;
  /// The smallest limit of the routes' targets (they differ by group, so the smallest is safe).
  std::size_t max_recipients() const override;

  /// The index of the route for `domain`; routes().size() for the fallback.
  std::size_t route_for(std::string_view domain) const;
  delivery::delivery_target* target_at(std::size_t index) const;

 private:
  std::vector<route> routes_;
  std::shared_ptr<delivery::delivery_target> fallback_;
};

/// Accepts every recipient and drops the message (Postfix's discard transport): for domains
/// whose mail is wanted nowhere. Logs each message it drops.
class discard_target final : public delivery::delivery_target {
 public:
  explicit discard_target(log::logger logger = {}) : log_(std::move(logger)) {}
  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx, address const& from) override;

 private:
  log::logger log_;
};

}  // namespace mailroom::mta
