// The mail retrieval agent: pulls mail from a remote POP3 or IMAP account and delivers it through
// any delivery_target (the local store through the MDA, or the queue so filters apply), as
// fetchmail and getmail do.
//
// Contract:
// - A message is delivered at most once and never lost: it is fetched, delivered (commit() made
//   it durable), then its identity (POP3 UIDL, or IMAP UIDVALIDITY and UID) is appended to the
//   account's state file and fdatasync'ed, and only then, in delete mode, removed on the server.
//   A crash between the delivery and the state write repeats that one message; nothing else.
// - State: <state_dir>/<account id>.state, an append-only log ("uidvalidity N" and "seen ID"
//   lines) rewritten compactly when it has grown; unknown lines are ignored.
// - IMAP: a UIDVALIDITY change forgets what was seen in that folder (the server renumbered it):
//   everything in it is fetched again, as fetchmail does.
// - One round at a time per account across processes (mailroomd and `mailroomctl fetch run`):
//   a round that finds <state>.lock taken fails with errc::resource_unavailable_try_again.
// - Messages larger than max_size are skipped (left on the server, logged, not marked seen).
// - run() polls every `interval` (IMAP with `idle`: waits in IDLE between fetches, at most
//   29 minutes); failures back off from `interval` doubling up to 1 hour.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <asio/steady_timer.hpp>

#include "mailroom/core/address.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/imap/client.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/net/tls/policy.hpp"

namespace mailroom::mra {

struct account {
  std::string id;                 ///< unique, names the state file: [A-Za-z0-9._-]+
  enum class protocol { pop3, imap } proto = protocol::imap;
  std::string host;               ///< name (A/AAAA through the resolver) or IP address
  std::uint16_t port = 993;
  bool implicit_tls = true;       ///< 993/995; else STARTTLS/STLS under `tls`
  net::tls::policy tls = net::tls::policy::verify;
  std::shared_ptr<net::tls::client_context> tls_context;  ///< null: the clients' defaults
  std::string user, password;
  bool allow_plaintext_auth = false;  ///< send the password without TLS (tls = none, trusted LANs)
  std::string folder = "INBOX";   ///< IMAP only
  bool keep = true;               ///< false: delete on the server after local delivery
  address deliver_to;             ///< the local recipient
  std::uint64_t max_size = 64 * 1024 * 1024;
  std::chrono::seconds interval{300};
  bool idle = false;              ///< IMAP IDLE between fetches (push)
};

struct fetch_stats {
  std::size_t fetched = 0;        ///< delivered this round
  std::size_t skipped = 0;        ///< too large
  std::size_t deleted = 0;        ///< removed on the server
  std::size_t seen = 0;           ///< already delivered before
};

class fetcher : public std::enable_shared_from_this<fetcher> {
 public:
  /// `dns` may be null when the host is an IP address; it must outlive the fetcher.
  fetcher(executor ex, account acct, std::shared_ptr<delivery::delivery_target> target, std::string state_dir,
          net::dns::resolver* dns = nullptr, log::logger logger = {});

  /// One round: connect, log in, deliver what is new, delete per policy, log out.
  task<result<fetch_stats>> fetch_once();
  /// Rounds until stop(); failures back off.
  task<void> run();
  void stop();
  ~fetcher();

  account const& settings() const noexcept { return acct_; }

 private:
  task<result<std::unique_ptr<net::stream>>> connect();
  task<result<fetch_stats>> fetch_pop3(std::unique_ptr<net::stream> s);
  task<result<fetch_stats>> fetch_imap(std::unique_ptr<net::stream> s, bool then_idle);
  /// Delivers one message to acct_.deliver_to; the id for logs.
  task<result<std::string>> deliver(std::string const& message);
  result<void> load_state();
  result<void> remember(std::string const& line);  ///< appends and fdatasyncs
  result<void> compact();
  /// One round at a time per account, across processes: flock on <state>.lock.
  result<void> lock();
  void unlock() noexcept;

  executor ex_;
  account acct_;
  std::shared_ptr<delivery::delivery_target> target_;
  std::string state_path_;
  net::dns::resolver* dns_;
  log::logger log_;
  std::set<std::string> seen_;
  std::uint32_t uidvalidity_ = 0;
  std::size_t log_lines_ = 0;
  int lock_fd_ = -1;
  bool stopping_ = false;
  imap::client* idling_ = nullptr;  ///< the connection waiting in IDLE, for stop()
  std::unique_ptr<asio::steady_timer> timer_;
};

}  // namespace mailroom::mra
