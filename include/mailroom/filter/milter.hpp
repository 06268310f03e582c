// Sendmail milter protocol, version 6, MTA side: a sans-I/O codec, a coroutine client session
// for one milter connection, and a pure function that applies the milter's changes to a message.
//
// Wire format: every packet is a 4-byte big-endian length (counting the command byte and the
// data), one command byte, then the data. String fields end with NUL; integers are big-endian.
//
// Codec contract: packet_reader bounds what a milter can make us buffer (max_packet octets per
// packet, 1 MiB by default; a larger announced length fails with errc::packet_too_large before
// any of it is buffered). decode_response() checks every field (NUL-terminated strings, integer
// widths, reply codes) and fails with errc::malformed_packet, errc::bad_reply_code or
// errc::unknown_command; errors are final for the connection (the stream cannot be trusted).
// Encoders fail with mailroom::errc::invalid_argument when a string field holds a NUL (it would
// end the field early and shift the rest of the packet).
//
// Session contract (client): one call per SMTP phase, in SMTP order, each returning the milter's
// verdict as a value; string arguments need only live until the call completes. Steps the milter
// asked to skip (SMFIP_NO*) are not sent and give action::continue_; steps it does not answer
// (SMFIP_NR_*) are sent and give continue_ without waiting. Macros given for a step go in an
// SMFIC_MACRO packet before it, only those the milter listed for that stage if it sent a list
// (names match with or without braces); none given, no packet. Every response packet has a
// deadline however it is split (timeouts: command, end_of_message; connect for the socket; hosts
// are IP literals or localhost, never resolved); an SMFIR_PROGRESS restarts the
// end-of-message deadline, within end_of_message_total. Modifications are accepted only at end of
// message and only for actions the milter negotiated. Any error leaves the client unusable: the
// milter unreachable (the socket's error), timing out (net::errc::timeout), closing
// (net::errc::eof), breaking the protocol or asking to shut down (errc values); the caller applies
// its failure policy (failure_verdict()) for the rest of the SMTP connection.
//
// Verdict semantics (as in Sendmail): at connect, accept, reject, tempfail and a reply concern the
// whole SMTP connection; at helo, accept does and a refusal concerns that HELO; at mail, data,
// header, eoh and body they concern the message; at rcpt, reject, tempfail and a reply concern
// only that recipient, accept and discard the message; at unknown, that command. After a verdict
// that settles a scope the client sends nothing more for it and answers with the same verdict
// (a message scope ends with end_of_message, abort or the next mail). connection_failure settles
// the connection.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::filter::milter {

enum class errc {
  packet_too_large = 1,  ///< the milter announced a packet over the limit
  malformed_packet,      ///< a packet too short, a string without its NUL, a bad integer field
  unknown_command,       ///< a reply command byte this client does not know
  bad_reply_code,        ///< SMFIR_REPLYCODE without a valid 4xx/5xx SMTP reply
  negotiation_failed,    ///< version or flags the milter asked for were not offered
  unexpected_response,   ///< a valid response at the wrong time (a modification before end of message,
                         ///< an action or skip that was not negotiated)
  too_many_changes,      ///< more modifications (or body replacement octets) than the limits allow
  shutdown,              ///< the milter asked to stop (SMFIR_SHUTDOWN)
  bad_socket,            ///< the socket specification is not inet:PORT@HOST, inet6:PORT@HOST or unix:PATH
  bad_modification,      ///< a header change that would corrupt the message (bad name, bare line ends)
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

// ---- constants (libmilter's mfdef.h names in comments) ----
inline constexpr std::uint32_t protocol_version = 6;

/// Commands, MTA to milter (SMFIC_*).
namespace cmd {
inline constexpr char abort = 'A', body = 'B', connect = 'C', macro = 'D', body_eob = 'E', helo = 'H',
                      quit_nc = 'K', header = 'L', mail = 'M', eoh = 'N', optneg = 'O', quit = 'Q', rcpt = 'R',
                      data = 'T', unknown = 'U';
}
/// Responses, milter to MTA (SMFIR_*).
namespace rsp {
inline constexpr char addrcpt = '+', delrcpt = '-', addrcpt_par = '2', shutdown = '4', accept = 'a',
                      replbody = 'b', continue_ = 'c', discard = 'd', chgfrom = 'e', conn_fail = 'f',
                      addheader = 'h', insheader = 'i', setsymlist = 'l', chgheader = 'm', progress = 'p',
                      quarantine = 'q', reject = 'r', skip = 's', tempfail = 't', replycode = 'y',
                      optneg = 'O';
}
/// Actions the milter may take (SMFIF_*).
namespace actions {
inline constexpr std::uint32_t add_headers = 0x01, change_body = 0x02, add_rcpt = 0x04, delete_rcpt = 0x08,
                               change_headers = 0x10, quarantine = 0x20, change_from = 0x40,
                               add_rcpt_par = 0x80, set_symlist = 0x100;
inline constexpr std::uint32_t all = 0x1ff;
}  // namespace actions
/// Protocol steps and behaviours (SMFIP_*).
namespace proto {
inline constexpr std::uint32_t no_connect = 0x1, no_helo = 0x2, no_mail = 0x4, no_rcpt = 0x8, no_body = 0x10,
                               no_headers = 0x20, no_eoh = 0x40, nr_header = 0x80, no_unknown = 0x100,
                               no_data = 0x200, skip = 0x400, rcpt_rej = 0x800, nr_connect = 0x1000,
                               nr_helo = 0x2000, nr_mail = 0x4000, nr_rcpt = 0x8000, nr_data = 0x10000,
                               nr_unknown = 0x20000, nr_eoh = 0x40000, nr_body = 0x80000, header_leadspc = 0x100000;
/// Everything this client implements (no SMFIP_MDS_*: body chunks stay at most 65535 octets).
inline constexpr std::uint32_t all = 0x1fffff;
}  // namespace proto
/// Stages for macro lists (SMFIM_*).
enum class stage : std::uint32_t { connect = 0, helo, mail, rcpt, data, eom, eoh };
inline constexpr std::size_t stage_count = 7;

inline constexpr std::size_t max_body_chunk = 65535;

// ---- values ----
using macro = std::pair<std::string, std::string>;  ///< name ("i" or "{auth_type}"), value
using macros = std::vector<macro>;
using macro_list = std::span<macro const>;

enum class action : std::uint8_t {
  continue_,           ///< go on (also: a step not sent)
  accept,              ///< accept the connection / message without further filtering
  reject,              ///< 5xx (the recipient only, at rcpt)
  tempfail,            ///< 4xx (the recipient only, at rcpt)
  discard,             ///< accept and drop the message
  reply,               ///< reject or tempfail with the milter's own SMTP reply (verdict::smtp)
  skip,                ///< no more body chunks wanted (only after SMFIP_SKIP)
  connection_failure,  ///< SMFIR_CONN_FAIL: drop the SMTP connection (421)
};

struct verdict {
  action act = action::continue_;
  std::optional<smtp::reply> smtp;  ///< set for action::reply (a 4xx or 5xx code)
  friend bool operator==(verdict const&, verdict const&) = default;
};

/// A change requested at end of message.
struct modification {
  enum class kind : std::uint8_t {
    add_header,     ///< name, value: append
    insert_header,  ///< index (0 = before the first header), name, value
    change_header,  ///< index (1-based occurrence of name), name, value ("" deletes)
    replace_body,   ///< value: a chunk of the new body (consecutive chunks concatenate)
    add_rcpt,       ///< name: address; value: ESMTP arguments (SMFIR_ADDRCPT_PAR) or ""
    delete_rcpt,    ///< name: address
    change_from,    ///< name: address; value: ESMTP arguments or ""
    quarantine,     ///< value: reason
  };
  kind what = kind::add_header;
  std::uint32_t index = 0;
  std::string name;
  std::string value;
  bool with_args = false;  ///< add_rcpt sent as SMFIR_ADDRCPT_PAR; change_from with an argument field
  friend bool operator==(modification const&, modification const&) = default;
};

struct progress {
  friend bool operator==(progress, progress) = default;
};
struct shutdown_request {
  friend bool operator==(shutdown_request, shutdown_request) = default;
};
/// SMFIR_SETSYMLIST: the macros the milter wants at one stage (space-separated names).
struct symlist {
  std::uint32_t stage = 0;
  std::string names;
  friend bool operator==(symlist const&, symlist const&) = default;
};
/// Everything a milter may send after negotiation.
using response = std::variant<verdict, modification, progress, shutdown_request, symlist>;

/// The result of option negotiation (and its reply packet's content).
struct negotiation {
  std::uint32_t version = protocol_version;
  std::uint32_t actions = 0;
  std::uint32_t protocol = 0;
  std::array<std::optional<std::string>, stage_count> macros;  ///< per stage: names requested, or none
  friend bool operator==(negotiation const&, negotiation const&) = default;
};

enum class family : char { unknown = 'U', unix_socket = 'L', inet = '4', inet6 = '6' };
struct peer {
  family fam = family::unknown;
  std::uint16_t port = 0;
  std::string address;  ///< "192.0.2.1", "2001:db8::1", or a socket path
};

// ---- codec ----
struct packet {
  char command = 0;
  std::string data;
  friend bool operator==(packet const&, packet const&) = default;
};

/// Frames packets from a byte stream (either direction). feed(), then next() until it says it
/// needs more; errors are final.
class packet_reader {
 public:
  explicit packet_reader(std::size_t max_packet = 1 << 20) : max_(max_packet) {}
  void feed(std::string_view bytes);
  result<std::optional<packet>> next();
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }

 private:
  std::size_t max_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::error_code error_;
};

/// Appends one packet to out.
void append_packet(std::string& out, char command, std::string_view data);

// Command encoders (each returns whole packets, ready to write).
std::string encode_optneg(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol);
result<std::string> encode_macros(char for_command, macro_list m);
result<std::string> encode_connect(std::string_view hostname, peer const& p);
result<std::string> encode_helo(std::string_view name);
result<std::string> encode_mail(std::string_view sender, std::span<std::string const> esmtp_args);
result<std::string> encode_rcpt(std::string_view recipient, std::span<std::string const> esmtp_args);
result<std::string> encode_header(std::string_view name, std::string_view value);
/// One or more SMFIC_BODY packets of at most max_body_chunk octets each; "" gives none.
std::string encode_body(std::string_view body);
result<std::string> encode_unknown(std::string_view command_line);
/// Commands without data: data, eoh, body_eob, abort, quit, quit_nc.
std::string encode_simple(char command);

/// Decodes a milter's response packet (anything but the negotiation reply).
result<response> decode_response(packet const& p);
/// Decodes the milter's SMFIC_OPTNEG reply, with its optional per-stage macro lists.
result<negotiation> decode_negotiation(packet const& p);

// Response encoders, for milters written against this codec (tests, fakes).
std::string encode_response(response const& r);
std::string encode_negotiation(negotiation const& n);

/// Parses SMFIR_REPLYCODE text ("550 5.7.1 go away", lines separated by CRLF or LF, each with the
/// same 4xx/5xx code) into an SMTP reply.
result<smtp::reply> parse_replycode(std::string_view text);

// ---- session ----
/// What the caller does when the milter fails (Sendmail's F=T, none, F=R): tempfail, carry on as
/// if the milter were not configured, or reject.
enum class failure_mode : std::uint8_t { tempfail, accept, reject };
/// The verdict for the current step under that policy (accept gives action::continue_).
verdict failure_verdict(failure_mode m);

struct timeouts {
  std::chrono::milliseconds connect{std::chrono::seconds(10)};
  std::chrono::milliseconds command{std::chrono::seconds(30)};          ///< each reply, and each write
  std::chrono::milliseconds end_of_message{std::chrono::seconds(300)};  ///< each reply after end of message
  /// All of end of message, however often the milter says SMFIR_PROGRESS.
  std::chrono::milliseconds end_of_message_total{std::chrono::minutes(30)};
};

struct client_options {
  std::uint32_t actions = actions::all;  ///< offered to the milter
  std::uint32_t protocol = proto::all;   ///< offered to the milter
  timeouts limits;
  std::size_t max_packet = 1 << 20;
  std::size_t max_modifications = 10000;
  /// Octets of all changes together (a new body, header names and values, recipients).
  std::size_t max_body_replacement = std::size_t(64) << 20;
};

/// The verdict at end of message and every modification, in the order the milter sent them.
struct outcome {
  verdict final;
  std::vector<modification> changes;
};

class client {
 public:
  /// Connects to "inet:PORT@HOST", "inet6:PORT@HOST" (HOST an IP literal or localhost) or
  /// "unix:/path" ("local:" too; at most 107 octets) and negotiates; errc::bad_socket otherwise.
  static task<result<std::unique_ptr<client>>> connect(executor ex, std::string_view socket_spec,
                                                       client_options opts = {});
  /// Over an already connected stream; call negotiate() next.
  client(std::unique_ptr<net::stream> stream, client_options opts);
  ~client();
  client(client const&) = delete;
  client& operator=(client const&) = delete;

  task<result<void>> negotiate();
  negotiation const& negotiated() const noexcept { return neg_; }
  /// True when the milter asked for header values with their leading whitespace (apply with it).
  bool leading_space() const noexcept { return (neg_.protocol & proto::header_leadspc) != 0; }

  task<result<verdict>> on_connect(std::string_view hostname, peer const& p, macro_list m = {});
  task<result<verdict>> helo(std::string_view name, macro_list m = {});
  /// Starts a message (a previous one not ended is aborted first). sender without angle brackets
  /// is sent as given; Sendmail sends "<addr>".
  task<result<verdict>> mail(std::string_view sender, std::span<std::string const> args = {}, macro_list m = {});
  /// rejected_by_mta: the MTA already refused this recipient; sent only under SMFIP_RCPT_REJ.
  task<result<verdict>> rcpt(std::string_view recipient, std::span<std::string const> args = {},
                             macro_list m = {}, bool rejected_by_mta = false);
  task<result<verdict>> data(macro_list m = {});
  /// value as it follows the colon (folded lines joined by "\n" or "\r\n"); leading whitespace is
  /// removed unless the milter negotiated SMFIP_HDR_LEADSPC.
  task<result<verdict>> header(std::string_view name, std::string_view value);
  task<result<verdict>> end_of_headers(macro_list m = {});
  /// Body octets as they will be stored (CRLF line ends); split into chunks. After a skip, more
  /// calls send nothing.
  task<result<verdict>> body(std::string_view chunk);
  task<result<outcome>> end_of_message(macro_list m = {});
  task<result<verdict>> unknown(std::string_view command_line, macro_list m = {});
  /// The current message is abandoned (RSET, rejected, SMTP error); sends SMFIC_ABORT if one is open.
  task<result<void>> abort();
  /// The SMTP connection ended but this milter connection will serve the next (SMFIC_QUIT_NC).
  task<result<void>> quit_nc();
  /// Ends the milter connection (SMFIC_QUIT, then close).
  task<void> quit();

 private:
  task<result<verdict>> step(std::string const& packets, std::uint32_t nr_flag);
  task<result<verdict>> message_step(std::string const& packets, std::uint32_t nr_flag);
  std::optional<verdict> settled(bool message_scope) const;
  task<result<packet>> read_packet(std::chrono::steady_clock::time_point until);
  task<result<response>> read_response(std::chrono::steady_clock::time_point until);
  result<std::string> macro_packet(stage s, char command, macro_list m) const;
  task<result<void>> send(std::string const& bytes);
  std::error_code broken(std::error_code ec);

  std::unique_ptr<net::stream> stream_;
  client_options opts_;
  negotiation neg_;
  packet_reader reader_;
  std::error_code failed_;
  std::optional<verdict> connection_done_;  // accept/reject of the whole connection
  std::optional<verdict> message_done_;     // final verdict for the current message
  bool in_message_ = false;
  bool skipping_body_ = false;
};

// ---- applying the changes ----
struct applied {
  std::string message;  ///< header block, blank line, body (CRLF line ends in what changed)
  bool headers_changed = false;
  bool body_replaced = false;
  std::vector<std::pair<std::string, std::string>> added_rcpts;  ///< address, ESMTP arguments
  std::vector<std::string> deleted_rcpts;
  std::optional<std::pair<std::string, std::string>> new_sender;  ///< address, ESMTP arguments
  std::optional<std::string> quarantine;                          ///< reason
};

/// Applies modifications in order to message (header block + CRLF CRLF + body, CRLF line ends as
/// mailroom stores messages; header lines are rewritten with CRLF). Header changes
/// follow Sendmail: insert_header index counts all headers (past the end appends); change_header
/// index is the 1-based occurrence of that name (0 is taken as 1), an empty value deletes it, a
/// missing occurrence with a value appends it. leading_space: values are used as sent ("Name:" +
/// value) as under SMFIP_HDR_LEADSPC; otherwise "Name: " + value. Line ends in values become CRLF
/// and every continuation line must start with SP or HT. A replaced body gets CRLF line ends.
/// Envelope changes are reported for the caller, not applied.
result<applied> apply(std::string_view message, std::span<modification const> changes, bool leading_space);

/// A message's header fields as the client sends them: name and the raw value after the colon
/// (folding kept with its CRLF), plus the offset where the body starts (message.size() if none).
struct header_field {
  std::string name;
  std::string value;
};
struct split_message {
  std::vector<header_field> headers;
  std::size_t body_offset = 0;
  bool blank_line = false;  ///< a blank line ended the header block
};
split_message split(std::string_view message);

/// Sends a whole message (headers, end of headers, body, end of message) after data(). Stops at
/// the first verdict other than continue_ (or skip, which stops only the body) and returns it as
/// the outcome's final verdict with no changes.
task<result<outcome>> send_message(client& c, std::string_view message, macro_list eoh_macros = {},
                                   macro_list eom_macros = {});

}  // namespace mailroom::filter::milter

template <>
struct std::is_error_code_enum<mailroom::filter::milter::errc> : std::true_type {};
