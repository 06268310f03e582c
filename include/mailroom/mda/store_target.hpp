// Local delivery into a message_store: one copy per account, with Return-Path: and
// Delivered-To: lines as MDAs write them.
//
// Recipients map to accounts: the local part, lower-cased, without its "+tag" (RFC 5233
// subaddress), through the alias map; a domain's catch-all takes recipients with no account.
// add_rcpt() refuses: 550 5.1.3 (local part cannot name an account), 550 5.1.1 (no such
// account), 552 5.2.2 or, with over_quota_tempfail, 452 4.2.2 (over quota, judged with the
// SIZE= the client announced), 451 4.3.0 (the store failed). commit() returns once every copy
// is durable; a copy that fails then (the quota filled up meanwhile, the disk is full) fails
// commit(), and the caller retries: copies already committed may arrive twice, none is lost.
//
// Sieve (RFC 5228, with the extensions of sieve/interpreter.hpp): when sieve_script gives an
// account a script, that copy is filed as the script says (keep, fileinto with flags and
// :create; a missing mailbox falls back to INBOX); a script that does not compile or fails at
// run time keeps the message in INBOX and logs why with the line. redirect and vacation replies
// go to `outgoing` once the copies are committed (a vacation reply from <>, Auto-Submitted:
// auto-replied, RFC 3834); reject/ereject refuse that recipient with 550 5.7.1 and the reason
// (recipient_outcomes(): the queue bounces it). The message is held in memory for Sieve.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/mda/aliases.hpp"
#include "mailroom/sieve/script.hpp"
#include "mailroom/sieve/vacation_store.hpp"
#include "mailroom/store/store.hpp"

namespace mailroom::mda {

struct store_target_options {
  std::shared_ptr<store::message_store> store;
  std::string mailbox = "INBOX";      ///< where mail goes (INBOX when this one does not exist)
  char extension_separator = '+';     ///< 0 = no subaddressing
  bool over_quota_tempfail = false;   ///< 452 4.2.2 rather than 552 5.2.2
  /// The account's active Sieve script, nullopt for none; asked at each delivery. Empty: no Sieve.
  std::function<std::optional<std::string>(std::string const& account)> sieve_script;
  /// Vacation replies remembered per account (RFC 5230 :days); empty: in memory.
  std::function<std::unique_ptr<sieve::vacation_store>(std::string const& account)> vacation_store;
  std::string hostname = "localhost";  ///< in Message-IDs of vacation replies
};

class store_target final : public delivery::delivery_target, public std::enable_shared_from_this<store_target> {
 public:
  explicit store_target(store_target_options opts, log::logger logger = {});

  /// Replaces the alias map (thread-safe; deliveries already started keep the old one).
  void set_aliases(std::shared_ptr<alias_map const> aliases);

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx,
                                                          address const& from) override;

  /// Account names a recipient maps to before catch-all; empty when its local part cannot be
  /// an account name.
  std::vector<std::string> accounts_for(address const& rcpt) const;

  struct resolved {
    std::string name;
    std::shared_ptr<store::account> account;
  };
  /// The accounts a recipient delivers to, or the refusal add_rcpt() would give.
  task<expected<std::vector<resolved>, smtp::reply>> resolve(address const& rcpt, std::uint64_t size_hint = 0);
  /// For RCPT time in front of a queue: nullopt when the recipient can be delivered to.
  task<std::optional<smtp::reply>> check_recipient(address const& rcpt, std::uint64_t size_hint = 0);

  store_target_options const& options() const noexcept { return opts_; }

  /// Where Sieve's redirect and vacation messages go (normally the queue); null: logged, not sent.
  void set_outgoing(std::shared_ptr<delivery::delivery_target> t);
  std::shared_ptr<delivery::delivery_target> outgoing() const;
  /// The compiled script of an account (cached while its text is unchanged), or the diagnostic.
  expected<std::shared_ptr<sieve::script const>, sieve::diagnostic> compiled(std::string const& account,
                                                                             std::string const& text);
  /// The account's vacation store (made once per account).
  sieve::vacation_store& vacation_store(std::string const& account);
  log::logger const& logger() const noexcept { return log_; }

 private:
  std::shared_ptr<alias_map const> aliases() const;

  store_target_options opts_;
  log::logger log_;
  mutable std::mutex mutex_;
  std::shared_ptr<alias_map const> aliases_;
  std::shared_ptr<delivery::delivery_target> outgoing_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<sieve::script const>>> scripts_;
  std::map<std::string, std::unique_ptr<sieve::vacation_store>> vacation_;
};

}  // namespace mailroom::mda
