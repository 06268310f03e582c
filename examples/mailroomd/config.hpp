// mailroomd's configuration: a TOML file (see README "mailroomd") read into plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/mra/fetcher.hpp"

namespace mailroomd {

struct listener {
  std::string kind;     ///< "mx" (port 25), "submission" (587), "submissions" (465), "lmtp" (24),
                        ///< "pop3" (110, STLS), "pop3s" (995), "imap" (143, STARTTLS), "imaps" (993)
  std::string address;  ///< "127.0.0.1:2525"
  bool allow_plaintext_auth = false;  ///< pop3/imap: passwords without TLS (trusted LANs only)
  /// SMTP kinds: this listener's own filter chain instead of [filters] mx / submission.
  std::optional<std::vector<std::string>> filters;
};

/// [[transport]]: where mail for a domain goes (Postfix transport(5) style).
struct transport {
  std::string domain;  ///< "example.org", ".example.org" (subdomains) or "*"
  std::string to;      ///< "local", "mx", "smtp:HOST[:PORT]", "lmtp:HOST:PORT", "discard"
};

/// [outbound]: delivery to other servers.
struct outbound {
  bool enabled = true;                     ///< false: mail for other domains is refused, nothing leaves
  std::string relayhost;                   ///< "HOST[:PORT]": every remote message goes there (no MX lookup)
  std::string relay_tls = "required";      ///< none | opportunistic | required | verify
  std::string relay_user, relay_password;  ///< AUTH at the relayhost
  std::string tls = "opportunistic";       ///< policy towards MX hosts
  std::string ca_file;                     ///< trust anchors for "verify" (default: the system's)
  std::vector<std::string> dns_servers;    ///< "IP:PORT"; default /etc/resolv.conf
  std::uint16_t mx_port = 25;              ///< tests only: the port MX hosts listen on
  std::vector<std::string> relay_domains;  ///< backup MX: accepted from anyone, delivered onwards
  std::vector<std::string> trusted_networks;  ///< e.g. "192.168.1.0/24": may relay without AUTH
  std::uint64_t max_age_hours = 120;       ///< bounce after this long
};

/// [[fetch]]: a remote mailbox the retrieval agent empties (or copies) into a local user's.
struct fetch_account {
  std::string id;                   ///< names its state file under data_dir/fetch/
  std::string protocol = "imap";    ///< imap | pop3
  std::string host;
  std::uint16_t port = 0;           ///< default 993 / 995 (implicit TLS) or 143 / 110
  std::string tls = "implicit";     ///< implicit | verify | required | opportunistic | none
  std::string ca_file;              ///< trust anchors (PEM) for implicit/verify; default the system's
  std::string user, password;
  std::string folder = "INBOX";     ///< IMAP
  bool keep = true;                 ///< false: delete on the server once delivered here
  std::string deliver_to;           ///< a local address
  std::uint64_t interval = 300;     ///< seconds between polls
  bool idle = false;                ///< IMAP IDLE (push) between polls
  std::uint64_t max_size = 64 * 1024 * 1024;
};

/// [filters] and the sections of the filters it names (see filters.hpp for their meaning).
struct milter_conf {
  std::string name;                  ///< used in the chain as "milter:NAME"
  std::string address;               ///< "inet:PORT@HOST", "inet6:PORT@HOST" or "unix:/path"
  std::string on_failure = "tempfail";  ///< tempfail | accept
};
struct dkim_key_conf {
  std::string domain, selector, key_file;  ///< signs mail whose From: is in domain
};
struct filters_conf {
  std::vector<std::string> mx;          ///< chain for mx and lmtp listeners, in order
  std::vector<std::string> submission;  ///< chain for submission(s) listeners
  std::string spf_fail = "mark";        ///< mark (headers only) | reject (550 5.7.23 on fail)
  bool dmarc_enforce = false;           ///< apply p=reject (550 5.7.1) and p=quarantine (hold)
  std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dat";
  std::vector<dkim_key_conf> dkim_keys;
  std::vector<std::string> dnsbl_sites;  ///< "zone" or "zone=127.0.0.2*3" (postscreen syntax)
  int dnsbl_threshold = 1;
  std::vector<std::string> dnswl_sites;  ///< listed clients skip greylisting and the DNSBL verdict
  std::uint64_t greylist_delay = 300;    ///< seconds
  std::uint64_t rate_messages_per_ip = 0;       ///< per hour; 0 = no limit
  std::uint64_t rate_messages_per_sender = 0;   ///< per hour; 0 = no limit
  std::vector<milter_conf> milters;
  std::string clamd, spamd, rspamd;      ///< addresses ("unix:/path", "inet:PORT@HOST")
  std::string scanners_on_failure = "tempfail";
  double spam_reject_score = 0;          ///< spamd/rspamd: reject above this score (0 = only tag)
};

struct config {
  std::string hostname = "localhost";
  std::string data_dir;                    ///< queue/ and mail/<user>/Maildir under it
  std::vector<std::string> local_domains;  ///< mail for these is delivered here
  std::string tls_cert, tls_key;           ///< PEM files; required by submission(s)
  std::string passwd_file;                 ///< users for AUTH (Dovecot passwd-file format)
  std::string aliases;                     ///< /etc/aliases-style map (mda::alias_map); reloaded on SIGHUP
  std::uint64_t quota_bytes = 0;           ///< per account; 0 = unlimited
  std::uint64_t quota_messages = 0;        ///< per account; 0 = unlimited
  bool quota_tempfail = false;             ///< over quota: 452 4.2.2 rather than 552 5.2.2
  std::string log_level = "info";
  std::vector<listener> listeners;
  outbound out;
  std::vector<transport> transports;
  std::vector<fetch_account> fetches;
  filters_conf filters;
};

/// The retrieval agent's settings for a [[fetch]] entry ("implicit" verifies the certificate;
/// "none" is an explicit choice to send the password in the clear).
mailroom::expected<mailroom::mra::account, std::string> to_account(fetch_account const& f);

/// Parses and validates; the error text names the file, line and problem.
mailroom::expected<config, std::string> load(std::string const& path);
/// The effective configuration as TOML (for --check-config).
std::string dump(config const& c);

}  // namespace mailroomd
