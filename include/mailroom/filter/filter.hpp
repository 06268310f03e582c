// The mail filter chain: filters see an SMTP transaction phase by phase (connection, HELO, MAIL,
// each RCPT, the whole message) and answer with verdicts, before anything reaches a queue.
//
// Contract:
// - filter::begin() runs once per connection; the filter_state it returns lives as long as the
//   connection and is used from one coroutine at a time. Phases come in order; on_reset() ends a
//   transaction (RSET, a new EHLO, STARTTLS, after the message).
// - The chain asks its filters in order. A reject or tempfail stops the phase and is answered
//   with the verdict's reply (or 550 5.7.1 / 451 4.7.1): at connect the session is refused, at
//   HELO/MAIL the command, at RCPT that recipient only, at the message the whole message.
//   discard accepts the message (250) and drops it; quarantine accepts it and asks the target to
//   hold it (queue: hold/, released with `mailroomctl queue release`).
// - Filters record what they checked in transaction::results; later filters read earlier results
//   (DMARC reads SPF and DKIM). The chain turns them into one Authentication-Results header
//   (RFC 8601) at the top of the message and removes any such header that claims to be ours.
// - A filter that cannot decide (a scanner down, a timeout: a std::error_code instead of a
//   verdict) is handled by its failure policy: tempfail (451 4.7.0, the default) or accept.
// - With a chain, the message is held in memory (up to the server's size limit) so that it can be
//   examined and changed before the target sees it and forged results removed; on_message is
//   called only on filters that want the message.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/address.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/reply.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::filter {

/// One method's outcome for Authentication-Results (RFC 8601 2.2): "spf=pass smtp.mailfrom=x".
struct auth_result {
  std::string method;  ///< "spf", "dkim", "dmarc", "iprev", ...
  std::string result;  ///< "pass", "fail", "none", ...
  std::string reason;  ///< optional, becomes reason="..."
  std::vector<std::pair<std::string, std::string>> properties;  ///< {"smtp.mailfrom", "example.org"}
  std::string comment;  ///< optional, becomes "(...)" after the result
};

/// "spf=pass smtp.mailfrom=example.org"; values that are not RFC 2045 tokens are quoted.
std::string format(auth_result const& r);
/// The whole header field, folded, ending in CRLF: "Authentication-Results: host;\r\n\tspf=pass ...;
/// ...", or "...: host; none" without results.
std::string authentication_results_header(std::string_view authserv_id, std::span<auth_result const> results);

/// What a filter knows of the transaction in progress.
struct transaction {
  smtp::session_info const* session = nullptr;  ///< the connection: client address, HELO, TLS, AUTH
  std::optional<address> from;                  ///< after MAIL
  smtp::mail_params mail;
  std::vector<address> rcpts;                   ///< recipients accepted so far
  std::vector<auth_result> results;             ///< added by filters, in chain order
};

struct verdict {
  enum class kind { accept, reject, tempfail, discard, quarantine };
  kind what = kind::accept;
  std::optional<smtp::reply> reply;            ///< for reject/tempfail; a default when absent
  std::vector<std::string> add_headers;        ///< whole fields "Name: value" (may be folded), no final CRLF
  std::optional<std::string> replace_message;  ///< the message rewritten (milter header/body changes)
  std::string reason;                          ///< for the log

  static verdict accept() { return {}; }
  static verdict reject(smtp::reply r, std::string why = {});
  static verdict tempfail(smtp::reply r, std::string why = {});
};

class filter_state {
 public:
  virtual ~filter_state() = default;
  virtual task<result<verdict>> on_connect(smtp::session_info const& session);
  /// `name` is the HELO/EHLO argument (the session's helo is still the previous one).
  virtual task<result<verdict>> on_helo(smtp::session_info const& session, std::string_view name);
  virtual task<result<verdict>> on_mail(transaction& t);
  virtual task<result<verdict>> on_rcpt(transaction& t, address const& rcpt);
  /// The whole message as the client sent it (CRLF lines, before our Received: line), with the
  /// changes earlier filters made.
  virtual task<result<verdict>> on_message(transaction& t, std::string_view message);
  virtual void on_reset() {}
};

class filter {
 public:
  virtual ~filter() = default;
  virtual std::string_view name() const = 0;
  /// True when on_message needs the content (the chain then buffers the message).
  virtual bool wants_message() const { return false; }
  virtual task<result<std::unique_ptr<filter_state>>> begin(smtp::session_info const& session) = 0;
};

enum class failure_policy { tempfail, accept };

struct chain_entry {
  std::shared_ptr<filter> f;
  failure_policy on_failure = failure_policy::tempfail;
};

/// Runs a list of filters for one connection; see the contract above. The entries must outlive
/// the session (mta::inbound keeps them in its options).
class chain_session {
 public:
  chain_session(std::span<chain_entry const> entries, log::logger const& log);
  ~chain_session();

  /// The connection's states; a reply refuses the connection.
  task<std::optional<smtp::reply>> connect(smtp::session_info const& session);
  task<std::optional<smtp::reply>> helo(smtp::session_info const& session, std::string_view name);
  task<std::optional<smtp::reply>> mail(smtp::session_info const& session, address const& from,
                                        smtp::mail_params const& params);
  task<std::optional<smtp::reply>> rcpt(address const& to);
  /// Records a recipient the target accepted (filters see it in transaction::rcpts).
  void accepted(address const& to);

  struct message_outcome {
    verdict::kind what = verdict::kind::accept;
    std::optional<smtp::reply> reply;  ///< for reject/tempfail
    std::string headers;                ///< fields to put at the top (CRLF-terminated), Authentication-Results first
    std::optional<std::string> message;  ///< the message changed by filters (else unchanged)
  };
  /// authserv_id names us in Authentication-Results (normally the host name).
  task<message_outcome> message(std::string_view content, std::string_view authserv_id);
  void reset();

  bool wants_message() const noexcept { return wants_message_; }
  transaction const& current() const noexcept { return t_; }

 private:
  task<std::optional<smtp::reply>> run(int phase, address const* rcpt, std::string_view helo = {});

  struct member {
    chain_entry const* entry;
    std::unique_ptr<filter_state> state;
  };
  std::span<chain_entry const> entries_;
  std::vector<member> members_;
  log::logger log_;
  transaction t_;
  std::string pending_headers_;  ///< added before the message phase
  bool hold_ = false, discard_ = false;
  bool wants_message_ = false;
};

/// Removes every Authentication-Results field of the message's header whose authserv-id (after
/// any comments; a token or a quoted-string) is `authserv_id`, in any case (RFC 8601 5: a claim
/// from outside that looks like ours). Returns nullopt when none was there.
std::optional<std::string> remove_claimed_results(std::string_view message, std::string_view authserv_id);

/// The values of every `name` field (any case) in the message's header, in order, unfolded
/// (line breaks removed), leading white space trimmed.
std::vector<std::string> header_values(std::string_view message, std::string_view name);

}  // namespace mailroom::filter
