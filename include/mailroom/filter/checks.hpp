// The built-in checks as filters for the chain (filter.hpp): SPF, DKIM verification and signing,
// DMARC, DNSBL/DNSWL, greylisting and rate limits. Each is a thin adapter over its component
// (spf.hpp, dkim.hpp, dmarc.hpp, dnsbl.hpp, greylist.hpp, rate_limit.hpp); all DNS goes through
// the filter::dns given, which must outlive the filters.
//
// Contract shared by all of them:
// - Sessions that authenticated (submission) are not checked by the inbound checks (SPF, DKIM
//   verification, DMARC, DNSBL, greylisting); only dkim_sign acts on them, and only on them.
// - Results go into transaction::results for the Authentication-Results header, in this form:
//   spf (smtp.mailfrom or smtp.helo), dkim (header.d, header.s, header.b), dmarc (header.from),
//   dnsbl (policy.zone). DMARC reads the spf and dkim entries before it, so put it after them.
// - The checks decide alone only where their options say so (spf reject_fail, dmarc enforce,
//   dnsbl); otherwise they only record.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mailroom/filter/dkim.hpp"
#include "mailroom/filter/dns.hpp"
#include "mailroom/filter/dnsbl.hpp"
#include "mailroom/filter/filter.hpp"
#include "mailroom/filter/greylist.hpp"
#include "mailroom/filter/clamd.hpp"
#include "mailroom/filter/milter.hpp"
#include "mailroom/filter/rspamd.hpp"
#include "mailroom/filter/spamd.hpp"
#include "mailroom/filter/public_suffix.hpp"
#include "mailroom/filter/rate_limit.hpp"
#include "mailroom/filter/spf.hpp"

namespace mailroom::filter {

struct spf_filter_options {
  bool reject_fail = false;  ///< fail: 550 5.7.23 at MAIL (RFC 7372); else recorded only
  spf::options spf;          ///< spf.receiver: our host name, also in Received-SPF
};
/// At MAIL: the MAIL FROM identity (postmaster@HELO for a null sender); adds Received-SPF.
std::shared_ptr<filter> make_spf_filter(dns& d, spf_filter_options opts);

/// At the message: every DKIM-Signature (up to the verifier's limits), one dkim result each
/// ("dkim=none" when there is none).
std::shared_ptr<filter> make_dkim_verify_filter(dns& d);

struct dmarc_filter_options {
  std::shared_ptr<public_suffix_list const> psl;
  bool enforce = false;  ///< p=reject: 550 5.7.1; p=quarantine: hold. Else recorded only.
};
/// At the message: the From: domain's policy against the spf and dkim results before it.
std::shared_ptr<filter> make_dmarc_filter(dns& d, dmarc_filter_options opts);

/// At the message, for authenticated sessions only: a DKIM-Signature with the current key of the
/// From: domain (no key for it: nothing is added).
std::shared_ptr<filter> make_dkim_sign_filter(std::shared_ptr<dkim::signing_table const> keys);

struct dnsbl_filter_options {
  std::vector<dnsbl::site> sites;      ///< negative weights are allowlists (DNSWL)
  int threshold = 1;
};
/// At connect: a listed client is refused with 554 5.7.1 naming the list (its TXT reason).
std::shared_ptr<filter> make_dnsbl_filter(dns& d, dnsbl_filter_options opts);

/// At RCPT: new (client network, sender, recipient) triplets get 451 4.7.1 until retried after
/// the delay. The greylist belongs to the executor the sessions run on.
std::shared_ptr<filter> make_greylist_filter(std::shared_ptr<greylist> g);

/// At MAIL: messages per client network and per sender (either may be null); over the limit:
/// 450 4.7.1 with the time to wait.
std::shared_ptr<filter> make_rate_limit_filter(std::shared_ptr<rate_limiter> per_client,
                                               std::shared_ptr<rate_limiter> per_sender);

/// A milter (milter.hpp) for every SMTP connection: connected in begin() (a failure there is the
/// entry's failure policy), told each phase, and at the message given the whole message; its
/// header and body changes replace the message, its quarantine holds it. Recipient and sender
/// changes are not applied (logged). `hostname` is our name (macro j).
std::shared_ptr<filter> make_milter_filter(executor ex, std::string name, std::string socket_spec,
                                           std::string hostname, milter::client_options opts = {},
                                           log::logger logger = {});

/// Content scanners at the message (a message over the scanner's max_size is not scanned and
/// passes, logged; a scanner that fails is the entry's failure policy):
/// clamd: a virus is refused with 554 5.7.1 naming it; X-Virus-Scanned is added.
std::shared_ptr<filter> make_clamd_filter(executor ex, clamd_options opts, log::logger logger = {});
/// spamd (SYMBOLS): X-Spam-Flag/X-Spam-Status added; refused with 550 5.7.1 at reject_score or
/// more (0: never refused).
std::shared_ptr<filter> make_spamd_filter(executor ex, spamd_options opts, double reject_score, log::logger logger = {});
/// rspamd /checkv2 with the envelope: "reject" gives 550 5.7.1 (its smtp_message when it has
/// one), "soft reject" and "greylist" 451 4.7.1, "add header"/"rewrite subject" X-Spam headers,
/// plus the headers rspamd asks to add.
std::shared_ptr<filter> make_rspamd_filter(executor ex, rspamd_options opts, log::logger logger = {});

}  // namespace mailroom::filter
