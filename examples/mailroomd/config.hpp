// mailroomd's configuration: a TOML file (see README "mailroomd") read into plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroomd {

struct listener {
  std::string kind;     ///< "mx" (port 25), "submission" (587), "submissions" (465), "lmtp" (24),
                        ///< "pop3" (110, STLS), "pop3s" (995), "imap" (143, STARTTLS), "imaps" (993)
  std::string address;  ///< "127.0.0.1:2525"
  bool allow_plaintext_auth = false;  ///< pop3/imap: passwords without TLS (trusted LANs only)
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
};

/// Parses and validates; the error text names the file, line and problem.
mailroom::expected<config, std::string> load(std::string const& path);
/// The effective configuration as TOML (for --check-config).
std::string dump(config const& c);

}  // namespace mailroomd
