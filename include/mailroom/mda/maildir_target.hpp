// Local delivery into per-user Maildirs: <root>/<user>/Maildir, one copy per recipient with
// Return-Path: and Delivered-To: lines, as MDAs write them.
//
// Contract: add_rcpt() refuses unknown users (550 5.1.1) unless create_users is set, and local
// parts that cannot name a directory (550 5.1.3); "user+tag" delivers to "user" (RFC 5233
// subaddress). commit() returns once every recipient's copy is durable (see maildir::writer). If
// one copy fails after others were committed, commit() fails and a retry may deliver those
// others again: at-least-once, never lost.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "mailroom/core/blocking.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/store/maildir/writer.hpp"

namespace mailroom::mda {

struct maildir_target_options {
  std::string root;
  bool create_users = false;       ///< a catch-all: unknown users get a Maildir on first mail
  char extension_separator = '+';  ///< 0 = no subaddressing
};

class maildir_target final : public delivery::delivery_target,
                             public std::enable_shared_from_this<maildir_target> {
 public:
  maildir_target(maildir_target_options opts, blocking_pool& pool, log::logger logger = {});

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx,
                                                          address const& from) override;

  /// The user a recipient maps to, or nullopt when its local part cannot be a user name.
  std::optional<std::string> user_for(address const& rcpt) const;
  /// For RCPT time: nullopt when the recipient can be delivered to, else the refusal (550 5.1.1
  /// unknown user, 550 5.1.3 unusable local part). Only looks at the file system.
  std::optional<smtp::reply> check_recipient(address const& rcpt) const;
  /// The user's Maildir, opened (and created when create_users) on first use; cached.
  result<std::shared_ptr<store::maildir::directory>> maildir(std::string const& user);

 private:
  maildir_target_options opts_;
  blocking_pool& pool_;
  log::logger log_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<store::maildir::directory>> dirs_;
};

}  // namespace mailroom::mda
