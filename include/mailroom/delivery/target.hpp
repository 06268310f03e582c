// Everything that accepts a message is a delivery_target: the queue, the local store, a remote
// SMTP client, a test recorder. They compose the same way.
//
// Contract, in order: start() with the sender; add_rcpt() per recipient (nullopt = accepted, a
// reply = refused for that recipient only); body() consumes the message; commit() makes it
// durable and returns an id, after which the caller may say 250; abort() (or destruction without
// commit) leaves nothing behind. A delivery is used from one coroutine at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "mailroom/core/address.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/reply.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::delivery {

/// Where a message comes from, for Received: lines, logs and policies.
struct message_context {
  std::string session_id;
  asio::ip::tcp::endpoint client;
  std::string helo;
  std::string protocol;   ///< "ESMTP", "ESMTPS", "ESMTPSA", "LMTP", ... (RFC 3848)
  std::string auth_user;  ///< empty when not authenticated
  smtp::mail_params params;
};

class delivery {
 public:
  virtual ~delivery() = default;
  virtual task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const& params) = 0;
  virtual task<result<void>> body(smtp::message_source& src) = 0;
  virtual task<result<std::string>> commit() = 0;
  virtual void abort() noexcept = 0;
  /// After body() or commit() failed: the reply that made it fail, when a peer gave one. A
  /// permanent (5xx) reply means the accepted recipients cannot get this message (the queue
  /// bounces them); anything else, or no reply, means try again later.
  virtual std::optional<smtp::reply> failure_reply() const { return std::nullopt; }
  /// After commit() succeeded, for targets that learn each recipient's fate only at the end
  /// (SMTP with PIPELINING, LMTP): one entry per recipient add_rcpt() accepted, in order;
  /// nullopt = delivered, a reply = refused (4xx: retry, 5xx: bounce). Empty = all delivered.
  virtual std::vector<std::optional<smtp::reply>> recipient_outcomes() const { return {}; }
  /// Before commit(): keep the message held for an administrator instead of delivering it (a
  /// filter's quarantine verdict). False when this target cannot hold messages; the caller then
  /// delivers it and logs that it could not.
  virtual bool hold() { return false; }
};

class delivery_target {
 public:
  virtual ~delivery_target() = default;
  virtual task<result<std::unique_ptr<delivery>>> start(message_context const& ctx, address const& from) = 0;
  /// Recipients with the same key may share one delivery (one transaction); the queue makes a
  /// delivery per key, e.g. per destination domain for remote SMTP. The default puts every
  /// recipient in one.
  virtual std::string group_key(address const& rcpt) const { return {}; }
  /// At most this many recipients per delivery (0 = no limit): the queue splits larger groups,
  /// as servers refuse more than about 100 recipients per transaction.
  virtual std::size_t max_recipients() const { return 0; }
};

}  // namespace mailroom::delivery
