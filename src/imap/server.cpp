#include "mailroom/imap/server.hpp"

#include "mailroom/imap/fetch.hpp"
#include "mailroom/imap/sort.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/sasl_exchange.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/mime/message.hpp"
#include "mailroom/mime/transfer_encoding.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/server_core.hpp"
#include "mailroom/net/tcp_stream.hpp"

namespace mailroom::imap {

struct server::impl {
  impl(executor ex, server_options o, log::logger l)
      : opts(std::move(o)), log(l.with_component("imap")),
        core(std::make_shared<net::server_core>(ex, log, opts.max_connections,
                                                "* BYE [UNAVAILABLE] Too many connections\r\n")) {
    if (!opts.auth_throttle) opts.auth_throttle = std::make_shared<auth::throttle>();
  }
  server_options opts;
  log::logger log;
  std::shared_ptr<net::server_core> core;
};

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr char const* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string make_session_id() {
  static std::atomic<std::uint64_t> counter{0};
  char buf[24];
  std::snprintf(buf, sizeof buf, "I%llX", static_cast<unsigned long long>(++counter));
  return buf;
}

// A string as IMAP sends it: quoted when that is safe, else a literal.
// The other users' namespace: "Shared/<owner>/<mailbox>".
constexpr std::string_view shared_prefix = "Shared";

std::string astring(std::string_view s, bool utf8 = false) {
  bool quotable = s.size() < 1024;
  for (unsigned char c : s)
    if (c == '"' || c == '\\' || c < ' ' || c == 0x7f || (c >= 0x80 && !utf8)) quotable = false;
  if (quotable) return "\"" + std::string(s) + "\"";
  return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
}

std::string imap_date(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

int month_of(std::string_view m) {
  for (int i = 0; i < 12; ++i)
    if (text::iequals(months[i], m)) return i;
  return -1;
}

// "1-Feb-1994" (SEARCH) -> seconds at 00:00 UTC that day.
std::optional<std::int64_t> parse_date(std::string_view s) {
  auto d1 = s.find('-'), d2 = s.rfind('-');
  if (d1 == std::string_view::npos || d2 == d1) return std::nullopt;
  auto day = text::parse_uint(s.substr(0, d1), 31);
  int mon = month_of(s.substr(d1 + 1, d2 - d1 - 1));
  auto year = text::parse_uint(s.substr(d2 + 1), 9999);
  if (!day || *day == 0 || mon < 0 || !year || *year < 1900) return std::nullopt;
  std::tm tm{};
  tm.tm_mday = static_cast<int>(*day);
  tm.tm_mon = mon;
  tm.tm_year = static_cast<int>(*year) - 1900;
  return static_cast<std::int64_t>(timegm(&tm));
}

// APPEND's date-time: "17-Jul-1996 02:44:25 -0700".
std::optional<std::int64_t> parse_date_time(std::string_view s) {
  if (s.size() < 26) return std::nullopt;
  auto day = s.substr(0, 2);
  if (day[0] == ' ') day.remove_prefix(1);
  auto date = parse_date(std::string(day) + std::string(s.substr(2, 9)));
  if (!date || s[11] != ' ' || s[14] != ':' || s[17] != ':' || s[20] != ' ') return std::nullopt;
  auto hh = text::parse_uint(s.substr(12, 2), 23), mm = text::parse_uint(s.substr(15, 2), 59),
       ss = text::parse_uint(s.substr(18, 2), 60);
  auto zh = text::parse_uint(s.substr(22, 2), 23), zm = text::parse_uint(s.substr(24, 2), 59);
  if (!hh || !mm || !ss || !zh || !zm || (s[21] != '+' && s[21] != '-')) return std::nullopt;
  std::int64_t zone = static_cast<std::int64_t>(*zh * 3600 + *zm * 60) * (s[21] == '-' ? -1 : 1);
  return *date + static_cast<std::int64_t>(*hh * 3600 + *mm * 60 + *ss) - zone;
}

// IMAP LIST wildcards: '*' matches anything, '%' anything but the delimiter.
bool wildcard(std::string_view pat, std::string_view name) {
  if (pat.empty()) return name.empty();
  if (pat[0] == '*' || pat[0] == '%') {
    for (std::size_t i = 0; i <= name.size(); ++i) {
      if (wildcard(pat.substr(1), name.substr(i))) return true;
      if (i < name.size() && pat[0] == '%' && name[i] == store::delimiter) return false;
    }
    return false;
  }
  return !name.empty() && pat[0] == name[0] && wildcard(pat.substr(1), name.substr(1));
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return text::to_lower(a) == text::to_lower(b); });
  return it != hay.end();
}

// "MESSAGES 3 UIDNEXT 9" for the requested items; nullopt if one is unknown.
std::optional<std::string> status_text(store::mailbox_status const& st, std::vector<std::string> const& wanted) {
  std::string out;
  for (auto const& s : wanted) {
    std::uint64_t v = 0;
    if (s == "MESSAGES") v = st.messages;
    else if (s == "UIDNEXT") v = st.uidnext;
    else if (s == "UIDVALIDITY") v = st.uidvalidity;
    else if (s == "UNSEEN") v = st.unseen;
    else if (s == "RECENT") v = st.recent;
    else if (s == "SIZE") v = st.size;
    else if (s == "DELETED") v = st.deleted;
    else if (s == "HIGHESTMODSEQ") v = st.highest_modseq;
    else return std::nullopt;
    out += (out.empty() ? "" : " ") + s + " " + std::to_string(v);
  }
  return out;
}

// "1:3,7" from ascending numbers.
std::string compact_set(std::vector<std::uint32_t> const& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    auto j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(v[i]);
    if (j > i) out += ":" + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

// RFC 7162 3.2.5: SELECT (QRESYNC (uidvalidity modseq [known-uids] [(seq-match-data)])).
struct qresync_params {
  std::uint32_t uidvalidity = 0;
  store::modseq_t modseq = 0;
  std::optional<std::vector<seq_range>> known;  ///< nullopt: every UID the mailbox had
};

std::optional<qresync_params> parse_qresync(std::vector<value> const& v) {
  if (v.size() < 2 || v.size() > 4) return std::nullopt;
  qresync_params q;
  auto uv = text::parse_uint(v[0].text, 0xffffffffu);
  auto ms = text::parse_uint(v[1].text);
  if (!v[0].is_string_like() || !v[1].is_string_like() || !uv || !ms || *uv == 0 || *ms == 0) return std::nullopt;
  q.uidvalidity = static_cast<std::uint32_t>(*uv);
  q.modseq = *ms;
  std::size_t i = 2;
  if (i < v.size() && v[i].k == value::kind::atom) {
    q.known = parse_sequence_set(v[i].text, 0xffffffffu);
    if (!q.known) return std::nullopt;
    ++i;
  }
  if (i < v.size()) {  // seq-match-data: checked, not needed (VANISHED covers every known UID)
    auto const& m = v[i];
    if (m.k != value::kind::list || m.items.size() != 2 || !parse_sequence_set(m.items[0].text, 0xffffffffu) ||
        !parse_sequence_set(m.items[1].text, 0xffffffffu))
      return std::nullopt;
    ++i;
  }
  if (i != v.size()) return std::nullopt;
  return q;
}

// The UIDs below uidnext that are in `known` (every UID when nullopt) but not in `msgs`, as
// an IMAP sequence set built from gaps (never enumerates UIDs one by one).
std::string missing_uids(std::optional<std::vector<seq_range>> const& known, std::vector<store::message_info> const& msgs,
                         store::uid_t uidnext) {
  std::string out;
  if (uidnext <= 1) return out;
  std::vector<seq_range> all{{1, uidnext - 1}};
  auto emit = [&](std::uint32_t a, std::uint32_t b) {
    if (!out.empty()) out += ',';
    out += std::to_string(a);
    if (b > a) out += ":" + std::to_string(b);
  };
  for (auto const& r : known ? *known : all) {
    if (r.first > uidnext - 1) break;
    std::uint32_t last = std::min<std::uint32_t>(r.last, uidnext - 1);
    std::uint64_t cur = r.first;
    auto it = std::lower_bound(msgs.begin(), msgs.end(), r.first,
                               [](store::message_info const& m, std::uint32_t u) { return m.uid < u; });
    for (; it != msgs.end() && it->uid <= last; ++it) {
      if (it->uid > cur) emit(static_cast<std::uint32_t>(cur), it->uid - 1);
      cur = std::uint64_t{it->uid} + 1;
    }
    if (cur <= last) emit(static_cast<std::uint32_t>(cur), last);
  }
  return out;
}

struct fetch_section {
  std::string item_name;          // as echoed: "BODY[1.HEADER]" (partial origin added)
  std::vector<unsigned> part;     // part numbers
  std::string spec;               // "", "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"
  std::vector<std::string> fields;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> partial;
  bool peek = false;
  bool binary = false;       // BINARY[...] (RFC 3516): the part's content, transfer-decoded
  bool binary_size = false;  // BINARY.SIZE[...]: only the decoded size
};

struct fetch_request {
  bool uid = false, flags = false, internaldate = false, size = false;
  bool envelope = false, body = false, bodystructure = false;
  bool modseq = false;
  std::optional<store::modseq_t> changed_since;
  std::vector<fetch_section> sections;
  bool needs_body() const { return !sections.empty() || envelope || body || bodystructure; }
};

class session final : public net::stoppable {
 public:
  session(server::impl& srv, std::unique_ptr<net::stream> s, asio::ip::tcp::endpoint remote, listener_options lo)
      : opts_(srv.opts), stream_(std::move(s)), parser_(opts_.limits), remote_(remote), listener_(std::move(lo)),
        log_(srv.log.with_id(make_session_id())),
        idle_done_(srv.core->get_executor()) {}

  task<void> run();

  void request_stop() noexcept override {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (reading_ && stream_) stream_->cancel();
  }
  void force_close() noexcept override {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (stream_) stream_->close();
  }

 private:
  enum class state { not_authenticated, authenticated, selected };

  void untagged(std::string_view line) {
    out_ += "* ";
    out_ += line;
    out_ += "\r\n";
  }
  void tagged(std::string_view tag, std::string_view status, std::string_view text) {
    out_ += tag;
    out_ += ' ';
    out_ += status;
    out_ += ' ';
    out_ += text;
    out_ += "\r\n";
  }
  void ok(command const& c, std::string_view text = {}) {
    tagged(c.tag, "OK", text.empty() ? std::string(c.uid ? "UID " : "") + c.name + " completed" : std::string(text));
  }
  void no(command const& c, std::string_view text) { tagged(c.tag, "NO", text); }
  void bad(std::string_view tag, std::string_view text) {
    tagged(tag.empty() ? "*" : tag, "BAD", text);
    ++bad_count_;
  }
  task<result<void>> flush() {
    if (out_.empty()) co_return result<void>{};
    std::string data;
    data.swap(out_);
    co_return co_await stream_->write(std::string_view(data));
  }

  bool utf8() const noexcept { return utf8_; }
  bool tls_available() const noexcept { return opts_.tls && !stream_->tls(); }
  bool auth_allowed() const noexcept { return opts_.auth && (stream_->tls() || listener_.allow_plaintext_auth); }
  std::string capabilities() const;

  // The next event from the client: reads as needed, answers continuations.
  task<result<parser::event>> next_event();
  task<bool> start_tls();

  task<void> dispatch(command& c);
  task<void> do_login(command const& c);
  task<void> do_authenticate(command const& c);
  task<void> auth_failed(command const& c, bool malformed);
  task<bool> login(command const& c, auth::identity who);
  task<void> do_select(command const& c, bool read_only);
  task<void> do_list(command const& c, bool lsub);
  task<void> do_status(command const& c);
  task<void> do_append(command const& c);
  task<void> do_idle(command const& c);
  task<void> do_quota(command const& c);
  task<void> do_fetch(command const& c);
  task<void> do_store(command const& c);
  task<void> do_search(command const& c);
  /// Indexes of the messages matching SEARCH keys; err is set (and the result meaningless) for
  /// malformed keys.
  task<std::vector<std::size_t>> matching(std::vector<value> const& keys, std::string& err);
  task<void> do_sort(command const& c, bool thread);
  task<void> do_copy(command const& c, bool move);
  task<void> do_expunge(command const& c);
  task<void> report_changes();
  void report_expunged(std::vector<store::uid_t> const& uids);
  // Where a mailbox name the client sent leads: the user's own account, or another user's
  // mailbox under "Shared/<owner>/" (RFC 2342's other users' namespace), with the rights the
  // user holds there (RFC 4314; the owner holds all of them).
  struct place {
    std::shared_ptr<store::account> acct;
    std::string name;  ///< in acct
    store::rights my = store::rights::full();
    bool own = true;
  };
  /// no_such_mailbox when the user holds no right at all on it (its existence is not revealed).
  /// With `to_create`, a mailbox that does not exist yet is a place with no rights (CREATE and
  /// RENAME then check 'k' on its parent).
  task<result<place>> locate(std::string visible, bool to_create = false);
  /// False (and a tagged NO [NOPERM] queued) unless `p` grants `right`.
  bool permitted(command const& c, place const& p, char right) {
    if (p.my.has(right)) return true;
    no(c, std::string("[NOPERM] You lack the '") + right + "' right on this mailbox");
    return false;
  }
  task<void> do_mailbox_command(command const& c);
  task<void> do_acl(command const& c);
  task<result<store::copy_result>> copy_across(std::vector<store::uid_t> const& uids, place const& dest, bool move);

  void close_mailbox() {
    mailbox_.reset();
    selected_account_.reset();
    selected_rights_ = store::rights::full();
    selected_name_.clear();
    saved_.clear();
    state_ = state::authenticated;
  }

  // Mailbox names: UTF-8 inside; on the wire modified UTF-7 unless UTF8=ACCEPT is enabled.
  std::optional<std::string> mailbox_arg(value const& v) const {
    if (!v.is_string_like()) return std::nullopt;
    if (utf8_) return text::is_valid_utf8(v.text) ? std::optional<std::string>(v.text) : std::nullopt;
    return text::decode_mutf7(v.text);
  }
  std::string wire_name(std::string_view name) const { return astring(utf8_ ? std::string(name) : text::encode_mutf7(name), utf8_); }
  void store_error(command const& c, std::error_code ec);

  // Message sets -> indexes into the view.
  std::optional<std::vector<std::size_t>> resolve_set(std::string_view set, bool uid) const;
  std::optional<fetch_request> parse_fetch(std::vector<value> const& args, std::size_t from, bool uid, std::string& error);
  task<result<std::string>> read_message(store::uid_t uid);
  /// nullopt when the MIME structure cannot be read; unknown_cte is set when a BINARY section
  /// has a Content-Transfer-Encoding we cannot decode.
  std::optional<std::string> section_bytes(std::string const& msg, fetch_section const& s, bool& unknown_cte);

  server_options const& opts_;
  std::unique_ptr<net::stream> stream_;
  parser parser_;
  asio::ip::tcp::endpoint remote_;
  listener_options listener_;
  log::logger log_;
  asio::steady_timer idle_done_;
  net::stream* handshake_lower_ = nullptr;
  std::string out_;
  bool reading_ = false;
  bool stop_ = false;
  bool logout_ = false;
  bool utf8_ = false;
  bool rev2_ = false;
  bool condstore_ = false;  ///< RFC 7162: enabled explicitly or by the first CONDSTORE-using command
  bool qresync_ = false;    ///< RFC 7162 QRESYNC enabled: VANISHED instead of EXPUNGE
  std::size_t bad_count_ = 0;
  std::size_t auth_failures_ = 0;
  state state_ = state::not_authenticated;
  std::string account_name_;
  std::shared_ptr<store::account> account_;
  std::unique_ptr<store::mailbox> mailbox_;
  std::shared_ptr<store::account> selected_account_;  ///< the selected mailbox's owner
  std::string selected_name_;                          ///< as the client named it
  store::rights selected_rights_ = store::rights::full();
  std::vector<store::uid_t> saved_;  ///< SEARCHRES (RFC 5182) "$", ascending UIDs
  std::vector<char> read_buf_ = std::vector<char>(16 * 1024);
};

std::string session::capabilities() const {
  std::string c = "CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL- SASL-IR ENABLE ID IDLE NAMESPACE UIDPLUS MOVE UNSELECT "
                  "ACL RIGHTS=texk SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES SPECIAL-USE LIST-EXTENDED LIST-STATUS UTF8=ACCEPT BINARY ESEARCH SEARCHRES CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE "
                  "APPENDLIMIT=" + std::to_string(opts_.limits.max_append_literal);
  if (state_ == state::not_authenticated) {
    if (tls_available()) c += " STARTTLS";
    if (!auth_allowed()) {
      c += " LOGINDISABLED";
    } else {
      for (auto const& m : opts_.auth_mechanisms) {
        if (text::iequals(m, "SCRAM-SHA-256") && !opts_.auth->supports_scram()) continue;
        c += " AUTH=" + text::to_upper(m);
      }
    }
  }
  return c;
}

task<result<parser::event>> session::next_event() {
  for (;;) {
    auto e = parser_.next();
    if (e.k == parser::event::kind::continuation) {
      out_ += "+ Ready for literal data\r\n";
      if (auto w = co_await flush(); !w) co_return fail(w.error());
      continue;
    }
    if (e.k != parser::event::kind::need_more) co_return e;
    if (auto w = co_await flush(); !w) co_return fail(w.error());
    reading_ = true;
    auto n = co_await stream_->read_some(read_buf_);
    reading_ = false;
    if (!n) co_return fail(n.error());
    parser_.feed(std::string_view(read_buf_.data(), *n));
  }
}

task<bool> session::start_tls() {
  auto t = co_await net::accept_tls(opts_.tls, std::move(stream_), opts_.tls_handshake_timeout, &handshake_lower_);
  if (!t) {
    log_.info("TLS handshake failed", {{"error", t.error().message()}});
    co_return false;
  }
  stream_ = std::move(*t);
  stream_->set_timeouts({opts_.login_timeout, opts_.command_timeout});
  co_return true;
}

task<void> session::run() {
  stream_->set_timeouts({opts_.login_timeout, opts_.command_timeout});
  if (log_.enabled(log::level::info))
    log_.info("connect", {{"client", remote_.address().to_string() + ":" + std::to_string(remote_.port())}});
  if (listener_.implicit_tls && (!opts_.tls || !co_await start_tls())) {
    if (!opts_.tls) log_.error("implicit TLS listener without a TLS context");
    if (stream_) stream_->close();
    co_return;
  }
  untagged("OK [" + capabilities() + "] mailroom IMAP ready");
  while (!logout_ && !stop_) {
    auto e = co_await next_event();
    if (!e) {
      if (e.error() == net::errc::timeout) untagged("BYE Autologout; idle for too long");
      else if (!(e.error() == asio::error::operation_aborted && stop_))
        log_.info("connection lost", {{"error", e.error().message()}});
      break;
    }
    if (e->k == parser::event::kind::error) {
      bad(e->tag, e->message);
      if (e->fatal) {
        untagged("BYE Cannot continue reading this connection");
        break;
      }
    } else {
      try {
        co_await dispatch(e->cmd);
      } catch (std::exception const& ex) {
        log_.error("session failed", {{"error", ex.what()}});
        untagged("BYE Internal error");
        logout_ = true;
      }
    }
    if (state_ == state::not_authenticated && bad_count_ >= opts_.max_bad_before_login) {
      untagged("BYE Too many invalid commands");
      break;
    }
    if (bad_count_ >= opts_.max_bad_commands) {
      untagged("BYE Too many invalid commands");
      break;
    }
  }
  if (stop_ && !logout_) untagged("BYE Server shutting down");
  if (stream_) {
    co_await flush();
    co_await stream_->shutdown();
    stream_->close();
  }
  log_.info("disconnect", {{"user", account_name_}});
}

void session::store_error(command const& c, std::error_code ec) {
  if (ec == store::errc::no_such_mailbox) no(c, "[NONEXISTENT] No such mailbox");
  else if (ec == store::errc::mailbox_exists) no(c, "[ALREADYEXISTS] Mailbox already exists");
  else if (ec == store::errc::invalid_name || ec == store::errc::cannot) no(c, "[CANNOT] " + ec.message());
  else if (ec == store::errc::has_children) no(c, "[CANNOT] Mailbox has inferior mailboxes");
  else if (ec == store::errc::over_quota) no(c, "[OVERQUOTA] Quota exceeded");
  else if (ec == store::errc::too_many_keywords) no(c, "[LIMIT] Too many keywords");
  else {
    log_.warning("store failed", {{"command", c.name}, {"error", ec.message()}});
    no(c, "[SERVERBUG] Internal error, try again later");
  }
}

task<void> session::dispatch(command& c) {
  auto const& n = c.name;
  auto argc = c.args.size();
  // Any state.
  if (n == "CAPABILITY" && argc == 0 && !c.uid) {
    untagged(capabilities());
    ok(c);
    co_return;
  }
  if (n == "NOOP" && argc == 0 && !c.uid) {
    if (state_ == state::selected) co_await report_changes();
    ok(c);
    co_return;
  }
  if (n == "LOGOUT" && argc == 0 && !c.uid) {
    untagged("BYE Logging out");
    ok(c);
    logout_ = true;
    co_return;
  }
  if (n == "ID" && argc == 1 && !c.uid) {
    untagged("ID (\"name\" \"mailroom\")");
    ok(c);
    co_return;
  }
  if (state_ == state::not_authenticated) {
    if (n == "STARTTLS" && argc == 0 && !c.uid) {
      if (!tls_available()) {
        bad(c.tag, "TLS is not available or already active");
        co_return;
      }
      ok(c, "Begin TLS negotiation now");
      if (auto w = co_await flush(); !w) {
        logout_ = true;
        co_return;
      }
      parser_.discard_buffered();  // nothing pipelined before the handshake may survive it
      if (!co_await start_tls()) logout_ = true;
      co_return;
    }
    if (n == "LOGIN" && argc == 2 && !c.uid) {
      co_await do_login(c);
      co_return;
    }
    if (n == "AUTHENTICATE" && (argc == 1 || argc == 2) && !c.uid) {
      co_await do_authenticate(c);
      co_return;
    }
    bad(c.tag, "Command unknown or not valid before login");
    co_return;
  }
  // Authenticated or selected.
  if (!c.uid) {
    if (n == "ENABLE" && argc >= 1) {
      std::string enabled;
      for (auto const& a : c.args) {
        if (a.is_atom("IMAP4REV2") && !rev2_) {
          rev2_ = utf8_ = true;
          enabled += " IMAP4rev2";
        } else if (a.is_atom("UTF8=ACCEPT") && !utf8_) {
          utf8_ = true;
          enabled += " UTF8=ACCEPT";
        } else if (a.is_atom("CONDSTORE") && !condstore_) {
          condstore_ = true;
          enabled += " CONDSTORE";
        } else if (a.is_atom("QRESYNC") && !qresync_) {
          qresync_ = condstore_ = true;  // QRESYNC implies CONDSTORE (RFC 7162 3.2.3)
          enabled += " QRESYNC";
        }
      }
      untagged("ENABLED" + enabled);
      ok(c);
      co_return;
    }
    if ((n == "SELECT" || n == "EXAMINE") && argc >= 1) {
      co_await do_select(c, n == "EXAMINE");
      co_return;
    }
    if (((n == "CREATE" || n == "DELETE" || n == "SUBSCRIBE" || n == "UNSUBSCRIBE") && argc >= 1) ||
        (n == "RENAME" && argc == 2)) {
      co_await do_mailbox_command(c);
      co_return;
    }
    if ((n == "GETACL" || n == "MYRIGHTS") && argc == 1) {
      co_await do_acl(c);
      co_return;
    }
    if (((n == "SETACL" && argc == 3) || ((n == "DELETEACL" || n == "LISTRIGHTS") && argc == 2))) {
      co_await do_acl(c);
      co_return;
    }
    if ((n == "LIST" || n == "LSUB") && argc >= 2) {
      co_await do_list(c, n == "LSUB");
      co_return;
    }
    if (n == "NAMESPACE" && argc == 0) {
      untagged("NAMESPACE ((\"\" \"/\")) ((\"" + std::string(shared_prefix) + "/\" \"/\")) NIL");
      ok(c);
      co_return;
    }
    if (n == "STATUS" && argc == 2) {
      co_await do_status(c);
      co_return;
    }
    if (n == "APPEND" && argc >= 2) {
      co_await do_append(c);
      co_return;
    }
    if (n == "IDLE" && argc == 0) {
      co_await do_idle(c);
      co_return;
    }
    if ((n == "GETQUOTAROOT" || n == "GETQUOTA" || n == "SETQUOTA") && argc >= 1) {
      co_await do_quota(c);
      co_return;
    }
  }
  if (state_ == state::selected) {
    if (!c.uid && (n == "CHECK" || n == "CLOSE" || n == "UNSELECT") && argc == 0) {
      if (n == "CHECK") {
        co_await report_changes();
      } else {
        if (n == "CLOSE" && !mailbox_->read_only() && selected_rights_.has('e'))
          (void)co_await mailbox_->expunge();  // silently
        close_mailbox();
      }
      ok(c);
      co_return;
    }
    if (n == "EXPUNGE" && ((!c.uid && argc == 0) || (c.uid && argc == 1))) {
      co_await do_expunge(c);
      co_return;
    }
    if (n == "FETCH" && (argc == 2 || argc == 3)) {
      co_await do_fetch(c);
      co_return;
    }
    if (n == "STORE" && (argc == 3 || argc == 4)) {
      co_await do_store(c);
      co_return;
    }
    if ((n == "SORT" || n == "THREAD") && argc >= 3) {
      co_await do_sort(c, n == "THREAD");
      co_return;
    }
    if (n == "SEARCH" && argc >= 1) {
      co_await do_search(c);
      co_return;
    }
    if ((n == "COPY" || n == "MOVE") && argc == 2) {
      co_await do_copy(c, n == "MOVE");
      co_return;
    }
  }
  bad(c.tag, "Command unknown, not valid in this state, or with wrong arguments");
}

task<void> session::auth_failed(command const& c, bool malformed) {
  ++auth_failures_;
  log_.notice("authentication failed", {{"client", remote_.address().to_string()}});
  if (auto delay = opts_.auth_throttle->failure(remote_.address()); delay.count() > 0) {
    asio::steady_timer t(stream_->get_executor(), delay);
    co_await t.async_wait(use_tuple);
  }
  if (malformed) bad(c.tag, "Malformed authentication data");
  else no(c, "[AUTHENTICATIONFAILED] Authentication failed");
  if (auth_failures_ >= opts_.max_auth_failures) {
    untagged("BYE Too many failed authentications");
    logout_ = true;
  }
}

task<bool> session::login(command const& c, auth::identity who) {
  opts_.auth_throttle->success(remote_.address());
  auto name = opts_.account_for ? opts_.account_for(who) : who.user;
  auto acct = co_await opts_.store->open_account(name);
  if (!acct) {
    log_.warning("no mailbox for user", {{"user", who.user}, {"account", name}, {"error", acct.error().message()}});
    no(c, acct.error() == store::errc::no_such_account ? "[AUTHORIZATIONFAILED] No mailbox for this user"
                                                       : "[UNAVAILABLE] Mailbox not available");
    co_return false;
  }
  account_ = std::move(*acct);
  account_name_ = name;
  state_ = state::authenticated;
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  log_.info("logged in", {{"user", who.user}});
  ok(c, "[" + capabilities() + "] Logged in");
  co_return true;
}

task<void> session::do_login(command const& c) {
  if (!auth_allowed()) {
    no(c, "[PRIVACYREQUIRED] LOGIN is disabled without TLS (use STARTTLS)");
    co_return;
  }
  if (!c.args[0].is_string_like() || !c.args[1].is_string_like()) {
    bad(c.tag, "LOGIN needs a user name and a password");
    co_return;
  }
  sasl::credentials creds{{}, c.args[0].text, c.args[1].text};
  auto who = co_await opts_.auth->authenticate(creds);
  if (!who) {
    if (who.error() != mailroom::errc::unknown_credentials && who.error() != mailroom::errc::bad_credentials) {
      log_.warning("auth backend failed", {{"error", who.error().message()}});
      no(c, "[UNAVAILABLE] Temporary authentication failure");
      co_return;
    }
    co_await auth_failed(c, false);
    co_return;
  }
  co_await login(c, std::move(*who));
}

task<void> session::do_authenticate(command const& c) {
  if (!auth_allowed()) {
    no(c, "[PRIVACYREQUIRED] Authentication is disabled without TLS (use STARTTLS)");
    co_return;
  }
  auto name = text::to_upper(c.args[0].text);
  bool offered = false;
  for (auto const& m : opts_.auth_mechanisms)
    if (text::iequals(m, name) && (name != "SCRAM-SHA-256" || opts_.auth->supports_scram())) offered = true;
  auto mech = offered ? sasl::make_server_mechanism(name) : result<std::unique_ptr<sasl::server_mechanism>>(fail(mailroom::errc::unsupported));
  if (!mech) {
    no(c, "[CANNOT] Unsupported authentication mechanism");
    co_return;
  }
  std::optional<std::string> initial;
  if (c.args.size() == 2) {
    if (c.args[1].text == "=") {
      initial = std::string();
    } else {
      auto d = base64::decode(c.args[1].text);
      if (!d) {
        co_await auth_failed(c, true);
        co_return;
      }
      initial = std::move(*d);
    }
  }
  // Continuation lines are raw: read them past the command parser's tokenizer.
  auth::sasl_challenge_fn challenge = [this](std::string_view data) -> task<result<std::optional<std::string>>> {
    out_ += "+ " + base64::encode(data) + "\r\n";
    for (;;) {
      auto line = parser_.take_line();
      if (line) {
        if (*line == "*") co_return std::optional<std::string>{};
        auto d = base64::decode(*line);
        if (!d) co_return fail(mailroom::errc::invalid_argument);
        co_return std::optional<std::string>(std::move(*d));
      }
      if (parser_.buffered() > 16384) co_return fail(mailroom::errc::invalid_argument);
      if (auto w = co_await flush(); !w) co_return fail(w.error());
      reading_ = true;
      auto n = co_await stream_->read_some(read_buf_);
      reading_ = false;
      if (!n) co_return fail(n.error());
      parser_.feed(std::string_view(read_buf_.data(), *n));
    }
  };
  auto outcome = co_await auth::run_sasl(**mech, *opts_.auth, std::move(initial), challenge);
  switch (outcome.k) {
    case auth::sasl_outcome::kind::success:
      co_await login(c, std::move(outcome.who));
      co_return;
    case auth::sasl_outcome::kind::cancelled:
      bad(c.tag, "Authentication cancelled");
      co_return;
    case auth::sasl_outcome::kind::temporary:
      no(c, "[UNAVAILABLE] Temporary authentication failure");
      co_return;
    case auth::sasl_outcome::kind::io_error:
      logout_ = true;
      co_return;
    case auth::sasl_outcome::kind::malformed:
      co_await auth_failed(c, true);
      co_return;
    case auth::sasl_outcome::kind::failed:
      co_await auth_failed(c, false);
      co_return;
  }
}

task<result<session::place>> session::locate(std::string visible, bool to_create) {
  auto prefix = std::string(shared_prefix) + store::delimiter;
  if (visible == shared_prefix) co_return fail(store::errc::cannot);  // the namespace itself
  if (!visible.starts_with(prefix)) co_return place{account_, std::move(visible), store::rights::full(), true};
  auto rest = std::string_view(visible).substr(prefix.size());
  auto slash = rest.find(store::delimiter);
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) co_return fail(store::errc::no_such_mailbox);
  std::string owner(rest.substr(0, slash));
  std::string name(rest.substr(slash + 1));
  if (owner == account_name_) co_return place{account_, std::move(name), store::rights::full(), true};
  // Only owners who share something with this user are opened: probing names never creates
  // or reveals accounts.
  auto shared = co_await opts_.store->shared_with(account_name_);
  if (!shared) co_return fail(shared.error());
  if (std::none_of(shared->begin(), shared->end(), [&](store::shared_mailbox const& m) { return m.owner == owner; }))
    co_return fail(store::errc::no_such_mailbox);
  auto acct = co_await opts_.store->open_account(owner);
  if (!acct) co_return fail(store::errc::no_such_mailbox);
  auto r = co_await (*acct)->rights_of(name, account_name_);
  if (!r && to_create && r.error() == store::errc::no_such_mailbox)
    co_return place{std::move(*acct), std::move(name), store::rights{}, false};
  if (!r) co_return fail(r.error());
  if (r->empty()) co_return fail(store::errc::no_such_mailbox);
  co_return place{std::move(*acct), std::move(name), *r, false};
}

task<void> session::do_mailbox_command(command const& c) {
  auto const& n = c.name;
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    bad(c.tag, "Invalid mailbox name");
    co_return;
  }
  if (n == "CREATE" && !name->empty() && name->back() == store::delimiter) name->pop_back();
  auto where = co_await locate(*name, n == "CREATE");
  if (!where) {
    store_error(c, where.error());
    co_return;
  }
  result<void> r;
  if (n == "CREATE") {
    auto use = store::special_use::none;
    // CREATE name (USE (\Sent)) — RFC 6154.
    if (c.args.size() == 2 && c.args[1].k == value::kind::list && c.args[1].items.size() == 2 &&
        c.args[1].items[0].is_atom("USE") && c.args[1].items[1].k == value::kind::list &&
        c.args[1].items[1].items.size() == 1) {
      auto u = store::parse_special_use(c.args[1].items[1].items[0].text);
      if (!u) {
        no(c, "[USEATTR] Unsupported special-use attribute");
        co_return;
      }
      use = *u;
    }
    if (!where->own) {  // 'k' on the parent (RFC 4314); nothing new at the top of another account
      auto parent = std::string(store::parent_name(where->name));
      result<store::rights> pr = store::rights{};
      if (!parent.empty()) pr = co_await where->acct->rights_of(parent, account_name_);
      if (!pr || !pr->has('k')) {
        no(c, "[NOPERM] You lack the 'k' right on the parent mailbox");
        co_return;
      }
    }
    r = co_await where->acct->create(where->name, use);
  } else if (n == "DELETE") {
    if (!permitted(c, *where, 'x')) co_return;
    if (mailbox_ && selected_name_ == store::normalize_name(*name).value_or(std::string())) close_mailbox();
    r = co_await where->acct->remove(where->name);
  } else if (n == "RENAME") {
    auto to_name = mailbox_arg(c.args[1]);
    if (!to_name) {
      bad(c.tag, "Invalid mailbox name");
      co_return;
    }
    auto to = co_await locate(*to_name, true);
    if (!to) {
      store_error(c, to.error());
      co_return;
    }
    if (to->acct->user() != where->acct->user()) {
      no(c, "[CANNOT] Mailboxes cannot move between users");
      co_return;
    }
    if (!permitted(c, *where, 'x')) co_return;
    if (!to->own) {
      auto parent = std::string(store::parent_name(to->name));
      result<store::rights> pr = store::rights{};
      if (!parent.empty()) pr = co_await to->acct->rights_of(parent, account_name_);
      if (!pr || !pr->has('k')) {
        no(c, "[NOPERM] You lack the 'k' right on the new parent mailbox");
        co_return;
      }
    }
    r = co_await where->acct->rename(where->name, to->name);
  } else {
    if (!where->own) {
      no(c, "[CANNOT] Subscriptions to other users' mailboxes are not kept");
      co_return;
    }
    r = co_await account_->subscribe(where->name, n == "SUBSCRIBE");
  }
  if (!r) store_error(c, r.error());
  else ok(c);
}

// RFC 4314: GETACL, SETACL, DELETEACL, LISTRIGHTS need 'a'; MYRIGHTS any right.
task<void> session::do_acl(command const& c) {
  auto name = mailbox_arg(c.args[0]);
  if (!name || (c.args.size() > 1 && !c.args[1].is_string_like()) || (c.args.size() > 2 && !c.args[2].is_string_like())) {
    bad(c.tag, "Invalid " + c.name + " arguments");
    co_return;
  }
  auto where = co_await locate(*name);
  if (!where) {
    store_error(c, where.error());
    co_return;
  }
  auto wire = wire_name(*name);
  if (c.name == "MYRIGHTS") {
    auto st = co_await where->acct->status(where->name);  // the mailbox must exist
    if (!st) {
      store_error(c, st.error());
      co_return;
    }
    untagged("MYRIGHTS " + wire + " " + astring(where->my.to_string()));
    ok(c);
    co_return;
  }
  if (!permitted(c, *where, 'a')) co_return;
  auto const& owner = where->acct->user();
  if (c.name == "GETACL") {
    auto acl = co_await where->acct->get_acl(where->name);
    if (!acl) {
      store_error(c, acl.error());
      co_return;
    }
    std::string line = "ACL " + wire;
    // The owner's implicit rights come first unless an entry names the owner.
    if (std::none_of(acl->begin(), acl->end(), [&](store::acl_entry const& e) { return e.identifier == owner; }))
      line += " " + astring(owner) + " " + astring(std::string(store::rights::all));
    for (auto const& e : *acl) line += " " + astring(e.identifier) + " " + astring(e.granted.to_string());
    untagged(line);
    ok(c);
    co_return;
  }
  // Identifiers name users as they log in; the store knows them by account (as account_for maps
  // them), so "ann@example.test" and "-ann@example.test" become "ann" and "-ann" when mapped so.
  std::string id = c.args[1].text;
  if (opts_.account_for && id != "anyone" && id != "authenticated" && id != "-anyone" && id != "-authenticated") {
    bool negative = id.starts_with('-');
    auth::identity who;
    who.user = negative ? id.substr(1) : id;
    id = (negative ? "-" : "") + opts_.account_for(who);
  }
  if (c.name == "LISTRIGHTS") {
    auto st = co_await where->acct->status(where->name);
    if (!st) {
      store_error(c, st.error());
      co_return;
    }
    // The owner always holds every right; anyone else may get each right on its own.
    if (id == owner) untagged("LISTRIGHTS " + wire + " " + astring(id) + " " + std::string(store::rights::all));
    else untagged("LISTRIGHTS " + wire + " " + astring(id) + " \"\" l r s w i p k x t e a");
    ok(c);
    co_return;
  }
  std::optional<store::rights> next;
  if (c.name == "SETACL") {
    std::string_view mod = c.args[2].text;
    char sign = !mod.empty() && (mod[0] == '+' || mod[0] == '-') ? mod[0] : 0;
    auto given = store::rights::parse(sign ? mod.substr(1) : mod);
    if (!given) {
      bad(c.tag, "Invalid rights");
      co_return;
    }
    next = *given;
    if (sign) {
      auto acl = co_await where->acct->get_acl(where->name);
      if (!acl) {
        store_error(c, acl.error());
        co_return;
      }
      store::rights now;
      for (auto const& e : *acl)
        if (e.identifier == id) now = e.granted;
      next = sign == '+' ? now.add(*given) : now.remove(*given);
    }
  }
  auto r = co_await where->acct->set_acl(where->name, id, next);
  if (!r) store_error(c, r.error());
  else ok(c);
}

task<result<store::copy_result>> session::copy_across(std::vector<store::uid_t> const& uids, place const& dest, bool move) {
  // Not atomic: a failure part-way leaves the copies made so far (their UIDs are not reported).
  store::copy_result out;
  std::vector<store::uid_t> done;
  for (auto uid : uids) {
    auto const& msgs = mailbox_->messages();
    auto it = std::lower_bound(msgs.begin(), msgs.end(), uid,
                               [](store::message_info const& m, store::uid_t u) { return m.uid < u; });
    if (it == msgs.end() || it->uid != uid) continue;
    store::append_options o;
    o.internal_date = it->internal_date;
    if (dest.my.has('s')) o.flags.set(store::system_flag::seen, it->flags.has(store::system_flag::seen));
    if (dest.my.has('t')) o.flags.set(store::system_flag::deleted, it->flags.has(store::system_flag::deleted));
    if (dest.my.has('w')) {
      for (auto sf : {store::system_flag::answered, store::system_flag::flagged, store::system_flag::draft})
        o.flags.set(sf, it->flags.has(sf));
      o.flags.keywords = it->flags.keywords;
    }
    auto body = co_await read_message(uid);
    if (!body) {
      if (body.error() == store::errc::no_such_message) continue;
      co_return fail(body.error());
    }
    auto ap = co_await dest.acct->append(dest.name, o);
    if (!ap) co_return fail(ap.error());
    if (auto w = (*ap)->write(*body); !w) co_return fail(w.error());
    auto r = co_await (*ap)->commit();
    if (!r) co_return fail(r.error());
    out.uidvalidity = r->uidvalidity;
    out.uids.emplace_back(uid, r->uid);
    done.push_back(uid);
  }
  if (move && !done.empty()) {
    store::flag_set del;
    del.set(store::system_flag::deleted);
    auto st = co_await mailbox_->store(done, store::flag_op::add, del);
    if (!st) co_return fail(st.error());
    std::optional<std::span<store::uid_t const>> only(done);
    auto gone = co_await mailbox_->expunge(only);
    if (!gone) co_return fail(gone.error());
    out.expunged = std::move(*gone);
  }
  co_return out;
}

task<void> session::do_select(command const& c, bool read_only) {
  // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2); the client learns that the
  // previous one closed from [CLOSED] (RFC 9051, RFC 7162 3.2.11).
  if (mailbox_ && (rev2_ || qresync_)) untagged("OK [CLOSED] Previous mailbox closed");
  close_mailbox();
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    bad(c.tag, "Invalid mailbox name");
    co_return;
  }
  // Parameters: (CONDSTORE) and/or (QRESYNC (uidvalidity modseq [known-uids [seq-match]])).
  std::optional<qresync_params> qr;
  if (c.args.size() > 2 || (c.args.size() == 2 && c.args[1].k != value::kind::list)) {
    bad(c.tag, "Invalid SELECT parameters");
    co_return;
  }
  if (c.args.size() == 2) {
    auto const& ps = c.args[1].items;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      if (ps[i].is_atom("CONDSTORE")) {
        condstore_ = true;
      } else if (ps[i].is_atom("QRESYNC") && i + 1 < ps.size() && ps[i + 1].k == value::kind::list) {
        if (!qresync_) {
          bad(c.tag, "ENABLE QRESYNC first");
          co_return;
        }
        qr = parse_qresync(ps[++i].items);
        if (!qr) {
          bad(c.tag, "Invalid QRESYNC parameters");
          co_return;
        }
      } else {
        bad(c.tag, "Unknown SELECT parameter");
        co_return;
      }
    }
  }
  auto where = co_await locate(*name);
  if (!where) {
    store_error(c, where.error());
    co_return;
  }
  if (!permitted(c, *where, 'r')) co_return;
  auto const& my = where->my;
  // Read-write only with a right that changes the mailbox (RFC 4314 4).
  read_only = read_only || !(my.has('s') || my.has('w') || my.has('t') || my.has('e'));
  auto mb = co_await where->acct->open(where->name, read_only);
  if (!mb) {
    store_error(c, mb.error());
    co_return;
  }
  mailbox_ = std::move(*mb);
  selected_account_ = where->acct;
  selected_name_ = *name;
  if (auto norm = store::normalize_name(*name)) selected_name_ = *norm;
  selected_rights_ = my;
  state_ = state::selected;
  std::size_t recent = 0;
  for (auto const& m : mailbox_->messages()) recent += m.recent ? 1 : 0;
  untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
  std::string permanent;
  if (!read_only) {
    if (my.has('w')) permanent += "\\Answered \\Flagged ";
    if (my.has('t')) permanent += "\\Deleted ";
    if (my.has('s')) permanent += "\\Seen ";
    if (my.has('w')) permanent += "\\Draft \\* ";
    if (!permanent.empty()) permanent.pop_back();
  }
  untagged("OK [PERMANENTFLAGS (" + permanent + ")] Flags permitted");
  untagged(std::to_string(mailbox_->messages().size()) + " EXISTS");
  if (!rev2_) untagged(std::to_string(recent) + " RECENT");
  untagged("OK [UIDVALIDITY " + std::to_string(mailbox_->uidvalidity()) + "] UIDs valid");
  untagged("OK [UIDNEXT " + std::to_string(mailbox_->uidnext()) + "] Predicted next UID");
  untagged("OK [HIGHESTMODSEQ " + std::to_string(mailbox_->highest_modseq()) + "] Highest");
  if (rev2_) untagged("LIST () \"/\" " + wire_name(selected_name_));
  if (qr && qr->uidvalidity == mailbox_->uidvalidity()) {
    // RFC 7162 3.2.5.1. Expunges are not kept with their MODSEQ, so VANISHED (EARLIER) names
    // every known UID that is gone, not only those expunged after the client's MODSEQ; clients
    // ignore UIDs they do not have.
    auto gone = missing_uids(qr->known, mailbox_->messages(), mailbox_->uidnext());
    if (!gone.empty()) untagged("VANISHED (EARLIER) " + gone);
    auto const& msgs = mailbox_->messages();
    for (std::size_t i = 0; i < msgs.size(); ++i)
      if (msgs[i].modseq > qr->modseq)
        untagged(std::to_string(i + 1) + " FETCH (UID " + std::to_string(msgs[i].uid) + " FLAGS (" +
                 msgs[i].flags.to_imap() + ") MODSEQ (" + std::to_string(msgs[i].modseq) + "))");
  }
  ok(c, read_only ? "[READ-ONLY] EXAMINE completed" : "[READ-WRITE] SELECT completed");
}

task<void> session::do_list(command const& c, bool lsub) {
  // LIST [(selection options)] reference pattern(s) [RETURN (return options)] — RFC 5258,
  // RFC 5819 (STATUS), RFC 6154 (SPECIAL-USE); LSUB is RFC 3501's.
  bool sel_subscribed = lsub, sel_recursive = false, sel_special = false;
  bool ret_subscribed = false, ret_children = true;
  std::vector<std::string> status_items;
  std::size_t i = 0;
  if (!lsub && c.args[0].k == value::kind::list) {
    for (auto const& o : c.args[0].items) {
      if (o.is_atom("SUBSCRIBED")) sel_subscribed = true;
      else if (o.is_atom("RECURSIVEMATCH")) sel_recursive = true;
      else if (o.is_atom("SPECIAL-USE")) sel_special = true;
      else if (!o.is_atom("REMOTE")) {  // REMOTE: no remote mailboxes here
        bad(c.tag, "Unknown LIST selection option " + o.text);
        co_return;
      }
    }
    if (sel_recursive && !sel_subscribed && !sel_special) {
      bad(c.tag, "RECURSIVEMATCH needs another selection option");
      co_return;
    }
    ++i;
  }
  if (c.args.size() < i + 2) {
    bad(c.tag, "LIST needs a reference and a pattern");
    co_return;
  }
  auto ref = mailbox_arg(c.args[i]);
  std::vector<std::string> patterns;
  if (c.args[i + 1].k == value::kind::list && !lsub) {
    for (auto const& p : c.args[i + 1].items)
      if (auto d = mailbox_arg(p)) patterns.push_back(*d);
  } else if (auto d = mailbox_arg(c.args[i + 1])) {
    patterns.push_back(*d);
  }
  if (c.args.size() > i + 2) {
    if (lsub || c.args.size() != i + 4 || !c.args[i + 2].is_atom("RETURN") || c.args[i + 3].k != value::kind::list) {
      bad(c.tag, "Invalid LIST arguments");
      co_return;
    }
    auto const& rs = c.args[i + 3].items;
    for (std::size_t k = 0; k < rs.size(); ++k) {
      if (rs[k].is_atom("SUBSCRIBED")) ret_subscribed = true;
      else if (rs[k].is_atom("CHILDREN") || rs[k].is_atom("SPECIAL-USE")) continue;  // always returned
      else if (rs[k].is_atom("STATUS") && k + 1 < rs.size() && rs[k + 1].k == value::kind::list) {
        for (auto const& st : rs[++k].items) status_items.push_back(text::to_upper(st.text));
      } else {
        bad(c.tag, "Unknown LIST return option " + rs[k].text);
        co_return;
      }
    }
  }
  if (!ref || patterns.empty()) {
    bad(c.tag, "Invalid reference or pattern");
    co_return;
  }
  if (patterns.size() == 1 && patterns[0].empty()) {  // the hierarchy delimiter
    untagged(std::string(lsub ? "LSUB" : "LIST") + " (\\Noselect) \"/\" \"\"");
    ok(c);
    co_return;
  }
  auto list = co_await account_->list();
  if (!list) {
    store_error(c, list.error());
    co_return;
  }
  auto matches = [&](std::string_view name) {
    for (auto const& p : patterns) {
      auto full = *ref + p;
      if (text::istarts_with(full, "INBOX") && (full.size() == 5 || full[5] == store::delimiter))
        full.replace(0, 5, "INBOX");
      if (wildcard(full, name)) return true;
    }
    return false;
  };
  // The subscription list, which may name mailboxes that do not exist (any more).
  std::set<std::string, std::less<>> subs;
  if (sel_subscribed || ret_subscribed) {
    auto sl = co_await account_->subscriptions();
    if (!sl) {
      store_error(c, sl.error());
      co_return;
    }
    subs.insert(sl->begin(), sl->end());
  }
  // Parents of subscribed mailboxes, for RECURSIVEMATCH's CHILDINFO (RFC 5258 3.5).
  std::set<std::string, std::less<>> subscribed_parents;
  if (sel_recursive && sel_subscribed)
    for (auto const& name : subs)
      for (auto p = store::parent_name(name); !p.empty(); p = store::parent_name(p)) subscribed_parents.emplace(p);
  std::set<std::string, std::less<>> listed;
  for (auto const& m : *list) {
    bool subscribed = subs.count(m.name) > 0;
    bool childinfo = subscribed_parents.count(m.name) > 0;
    listed.insert(m.name);
    if (sel_subscribed && !subscribed && !childinfo) continue;
    if (sel_special && m.use == store::special_use::none) continue;
    if (!matches(m.name)) continue;
    std::string attrs;
    if (ret_children) attrs = m.has_children ? "\\HasChildren" : "\\HasNoChildren";
    if (m.use != store::special_use::none) attrs += " " + std::string(store::to_imap(m.use));
    if (subscribed && !lsub) attrs += " \\Subscribed";
    std::string line = std::string(lsub ? "LSUB" : "LIST") + " (" + attrs + ") \"/\" " + wire_name(m.name);
    if (childinfo && !lsub) line += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
    untagged(line);
    if (!status_items.empty()) {
      auto st = co_await account_->status(m.name);
      if (auto items = st ? status_text(*st, status_items) : std::nullopt)
        untagged("STATUS " + wire_name(m.name) + " (" + *items + ")");
    }
  }
  // Subscribed names that do not exist (RFC 9051 6.3.9: \NonExistent; LSUB: \Noselect), and
  // parents that do not exist but hold subscribed mailboxes.
  std::map<std::string, std::pair<bool, bool>> absent;  // name -> (subscribed, childinfo)
  if (sel_subscribed && !sel_special) {
    for (auto const& name : subs)
      if (!listed.count(name)) absent[name].first = true;
    for (auto const& p : subscribed_parents)
      if (!listed.count(p)) absent[p].second = true;
  }
  for (auto const& [name, how] : absent) {
    if (!matches(name)) continue;
    if (lsub) {
      if (how.first) untagged("LSUB (\\Noselect) \"/\" " + wire_name(name));
      continue;
    }
    untagged(std::string("LIST (\\NonExistent") + (how.first ? " \\Subscribed" : "") + ") \"/\" " + wire_name(name) +
             (how.second ? " (\"CHILDINFO\" (\"SUBSCRIBED\"))" : ""));
  }
  // Other users' mailboxes this user may look up, under "Shared/<owner>/", with the levels
  // above them as \Noselect.
  if (!lsub && !sel_subscribed && !sel_special) {
    auto shared = co_await opts_.store->shared_with(account_name_);
    std::map<std::string, bool> names;  // visible name -> selectable
    std::set<std::string, std::less<>> parents;
    if (shared)
      for (auto const& m : *shared) {
        auto full = std::string(shared_prefix) + store::delimiter + m.owner + store::delimiter + m.name;
        names[full] = true;
        for (auto p = store::parent_name(full); !p.empty(); p = store::parent_name(p)) {
          parents.emplace(p);
          names.try_emplace(std::string(p), false);
        }
      }
    for (auto const& [full, selectable] : names) {
      if (!matches(full)) continue;
      std::string attrs = selectable ? "" : "\\Noselect ";
      attrs += parents.count(full) ? "\\HasChildren" : "\\HasNoChildren";
      untagged("LIST (" + attrs + ") \"/\" " + wire_name(full));
      if (selectable && !status_items.empty()) {
        auto where = co_await locate(full);
        if (!where || !where->my.has('r')) continue;
        auto st = co_await where->acct->status(where->name);
        if (auto items = st ? status_text(*st, status_items) : std::nullopt)
          untagged("STATUS " + wire_name(full) + " (" + *items + ")");
      }
    }
  }
  ok(c);
}

task<void> session::do_status(command const& c) {
  auto name = mailbox_arg(c.args[0]);
  if (!name || c.args[1].k != value::kind::list || c.args[1].items.empty()) {
    bad(c.tag, "STATUS needs a mailbox and a list of items");
    co_return;
  }
  auto where = co_await locate(*name);
  if (!where) {
    store_error(c, where.error());
    co_return;
  }
  if (!permitted(c, *where, 'r')) co_return;
  auto st = co_await where->acct->status(where->name);
  if (!st) {
    store_error(c, st.error());
    co_return;
  }
  std::vector<std::string> wanted;
  for (auto const& item : c.args[1].items) wanted.push_back(text::to_upper(item.text));
  auto items = status_text(*st, wanted);
  if (!items) {
    bad(c.tag, "Unknown STATUS item");
    co_return;
  }
  untagged("STATUS " + wire_name(*name) + " (" + *items + ")");
  if (state_ == state::selected) co_await report_changes();
  ok(c);
}

task<void> session::do_append(command const& c) {
  auto name = mailbox_arg(c.args[0]);
  if (!name || !c.args.back().is_string_like() || c.args.size() > 4) {
    bad(c.tag, "APPEND needs a mailbox and a message");
    co_return;
  }
  store::append_options o;
  for (std::size_t i = 1; i + 1 < c.args.size(); ++i) {
    auto const& a = c.args[i];
    if (a.k == value::kind::list) {
      for (auto const& f : a.items)
        if (!o.flags.add_imap(f.text)) {
          bad(c.tag, "Invalid flag " + f.text);
          co_return;
        }
    } else if (a.k == value::kind::string) {
      o.internal_date = parse_date_time(a.text);
      if (!o.internal_date) {
        bad(c.tag, "Invalid date-time");
        co_return;
      }
    } else {
      bad(c.tag, "Invalid APPEND argument");
      co_return;
    }
  }
  auto where = co_await locate(*name);
  if (!where) {
    if (where.error() == store::errc::no_such_mailbox) no(c, "[TRYCREATE] No such mailbox");
    else store_error(c, where.error());
    co_return;
  }
  if (!permitted(c, *where, 'i')) co_return;
  if (!where->my.has('s')) o.flags.set(store::system_flag::seen, false);  // flags need their rights too
  if (!where->my.has('t')) o.flags.set(store::system_flag::deleted, false);
  if (!where->my.has('w')) {
    auto keep = o.flags;
    o.flags = {};
    o.flags.set(store::system_flag::seen, keep.has(store::system_flag::seen));
    o.flags.set(store::system_flag::deleted, keep.has(store::system_flag::deleted));
  }
  auto ap = co_await where->acct->append(where->name, o);
  if (!ap) {
    if (ap.error() == store::errc::no_such_mailbox) no(c, "[TRYCREATE] No such mailbox");
    else store_error(c, ap.error());
    co_return;
  }
  if (auto w = (*ap)->write(c.args.back().text); !w) {
    store_error(c, w.error());
    co_return;
  }
  auto r = co_await (*ap)->commit();
  if (!r) {
    store_error(c, r.error());
    co_return;
  }
  if (state_ == state::selected) co_await report_changes();
  ok(c, "[APPENDUID " + std::to_string(r->uidvalidity) + " " + std::to_string(r->uid) + "] APPEND completed");
}

void session::report_expunged(std::vector<store::uid_t> const& gone) {
  if (gone.empty()) return;
  if (qresync_) {  // RFC 7162 3.2.10
    untagged("VANISHED " + compact_set(gone));
    return;
  }
  // Sequence numbers as the client knows them, shifting after each EXPUNGE.
  std::vector<store::uid_t> known;
  for (auto const& m : mailbox_->messages()) known.push_back(m.uid);
  known.insert(known.end(), gone.begin(), gone.end());
  std::sort(known.begin(), known.end());
  for (auto uid : gone) {
    auto it = std::lower_bound(known.begin(), known.end(), uid);
    untagged(std::to_string(it - known.begin() + 1) + " EXPUNGE");
    known.erase(it);
  }
}

task<void> session::report_changes() {
  auto before = mailbox_->messages().size();
  auto ch = co_await mailbox_->sync();
  if (!ch) {
    log_.warning("sync failed", {{"error", ch.error().message()}});
    co_return;
  }
  if (ch->uidvalidity_changed) {
    untagged("BYE [UIDVALIDITY] The mailbox was deleted or reset");
    logout_ = true;
    co_return;
  }
  report_expunged(ch->expunged);
  auto const& msgs = mailbox_->messages();
  bool grew = msgs.size() != before - ch->expunged.size();
  if (grew) untagged(std::to_string(msgs.size()) + " EXISTS");
  auto known = before - ch->expunged.size();
  std::size_t recent = 0;
  for (auto idx : ch->changed) {
    if (idx < known)
      untagged(std::to_string(idx + 1) + " FETCH (UID " + std::to_string(msgs[idx].uid) + " FLAGS (" +
               msgs[idx].flags.to_imap() + ")" +
               (condstore_ ? " MODSEQ (" + std::to_string(msgs[idx].modseq) + ")" : std::string()) + ")");
  }
  if (grew && !rev2_) {
    for (auto const& m : msgs) recent += m.recent ? 1 : 0;
    untagged(std::to_string(recent) + " RECENT");
  }
}

task<void> session::do_idle(command const& c) {
  out_ += "+ idling\r\n";
  if (auto w = co_await flush(); !w) {
    logout_ = true;
    co_return;
  }
  // The watcher reports changes while this coroutine waits for DONE: one write and one read
  // may run at once on a net::stream.
  bool idling = true;
  bool watcher_running = state_ == state::selected;
  bool watcher_waiting = false;  // only a wait may be cancelled: cancelling a write would cut a response
  asio::cancellation_signal stop_watch;
  if (watcher_running) {
    auto watcher = [this, &idling, &watcher_waiting]() -> task<void> {
      while (idling) {
        watcher_waiting = true;
        co_await mailbox_->wait_for_change(std::chrono::minutes(1));
        watcher_waiting = false;
        if (!idling) break;
        co_await report_changes();
        if (logout_) {  // the mailbox went away: BYE was queued; end the session's read too
          (void)co_await flush();
          stream_->cancel();
          break;
        }
        if (!idling) break;
        if (auto w = co_await flush(); !w) break;
      }
    };
    asio::co_spawn(stream_->get_executor(), watcher,
                   asio::bind_cancellation_slot(stop_watch.slot(), [this, &watcher_running](std::exception_ptr) {
                     watcher_running = false;
                     idle_done_.cancel();
                   }));
  }
  bool done = false;
  std::error_code err;
  for (;;) {
    auto d = parser_.take_done();
    if (d && *d) {
      done = true;
      break;
    }
    if (!d) break;  // something other than DONE
    reading_ = true;
    auto n = co_await stream_->read_some(read_buf_);
    reading_ = false;
    if (!n) {
      err = n.error();
      break;
    }
    parser_.feed(std::string_view(read_buf_.data(), *n));
  }
  idling = false;
  if (watcher_running) {
    if (watcher_waiting) stop_watch.emit(asio::cancellation_type::terminal);
    while (watcher_running) {
      idle_done_.expires_after(std::chrono::seconds(5));
      co_await idle_done_.async_wait(use_tuple);
    }
  }
  if (err) {
    if (err == net::errc::timeout) untagged("BYE Autologout; idle for too long");
    logout_ = true;
    co_return;
  }
  if (!done) {
    bad(c.tag, "Expected DONE");
    co_return;
  }
  ok(c, "IDLE terminated");
}

// RFC 9208: one quota root "" per account, STORAGE in KiB and MESSAGE counts; no SETQUOTA.
task<void> session::do_quota(command const& c) {
  if (c.name == "SETQUOTA") {
    no(c, "[NOPERM] Quotas are set by the administrator");
    co_return;
  }
  if (c.name == "GETQUOTAROOT") {
    auto name = mailbox_arg(c.args[0]);
    if (!name) {
      bad(c.tag, "Invalid mailbox name");
      co_return;
    }
    auto st = co_await account_->status(*name);
    if (!st) {
      store_error(c, st.error());
      co_return;
    }
  } else if (!c.args[0].is_string_like() || !c.args[0].text.empty()) {
    no(c, "[NONEXISTENT] No such quota root");
    co_return;
  }
  auto q = co_await account_->quota();
  if (!q) {
    store_error(c, q.error());
    co_return;
  }
  bool limited = q->storage_limit || q->messages_limit;
  if (c.name == "GETQUOTAROOT") untagged("QUOTAROOT " + wire_name(mailbox_arg(c.args[0]).value_or("")) + (limited ? " \"\"" : ""));
  if (limited) {
    std::string res;
    if (q->storage_limit)
      res += "STORAGE " + std::to_string((q->storage_used + 1023) / 1024) + " " + std::to_string(q->storage_limit / 1024);
    if (q->messages_limit)
      res += (res.empty() ? "" : " ") + std::string("MESSAGE ") + std::to_string(q->messages_used) + " " +
             std::to_string(q->messages_limit);
    untagged("QUOTA \"\" (" + res + ")");
  } else if (c.name == "GETQUOTA") {
    no(c, "[NONEXISTENT] No such quota root");
    co_return;
  }
  ok(c);
}

std::optional<std::vector<std::size_t>> session::resolve_set(std::string_view set, bool uid) const {
  auto const& msgs = mailbox_->messages();
  if (set == "$") {  // RFC 5182: the saved result; messages expunged since then are gone from it
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < msgs.size(); ++i)
      if (std::binary_search(saved_.begin(), saved_.end(), msgs[i].uid)) out.push_back(i);
    return out;
  }
  std::uint32_t max = uid ? (msgs.empty() ? 0 : msgs.back().uid) : static_cast<std::uint32_t>(msgs.size());
  auto ranges = parse_sequence_set(set, max);
  if (!ranges) return std::nullopt;
  std::vector<std::size_t> out;
  if (uid) {
    for (std::size_t i = 0; i < msgs.size(); ++i)
      if (contains(*ranges, msgs[i].uid)) out.push_back(i);
  } else {
    for (auto const& r : *ranges) {
      if (r.first > msgs.size()) return std::nullopt;  // no such message
      for (auto n = r.first; n <= std::min<std::uint32_t>(r.last, static_cast<std::uint32_t>(msgs.size())); ++n)
        out.push_back(n - 1);
      if (r.last > msgs.size()) return std::nullopt;
    }
  }
  return out;
}

std::optional<fetch_request> session::parse_fetch(std::vector<value> const& args, std::size_t from, bool uid,
                                                  std::string& error) {
  fetch_request r;
  r.uid = uid;
  std::vector<value const*> items;
  if (args[from].k == value::kind::list) {
    for (auto const& i : args[from].items) items.push_back(&i);
  } else {
    items.push_back(&args[from]);
  }
  for (auto const* v : items) {
    auto up = text::to_upper(v->text);
    if (v->k != value::kind::atom) {
      error = "Invalid fetch item";
      return std::nullopt;
    }
    if (up == "ALL" || up == "FULL") {
      r.flags = r.internaldate = r.size = r.envelope = true;
      r.body = up == "FULL";
    } else if (up == "ENVELOPE") {
      r.envelope = true;
    } else if (up == "BODYSTRUCTURE") {
      r.bodystructure = true;
    } else if (up == "BODY") {
      r.body = true;
    } else if (up == "MODSEQ") {
      r.modseq = true;
    } else if (up == "FAST") {
      r.flags = r.internaldate = r.size = true;
    } else if (up == "UID") {
      r.uid = true;
    } else if (up == "FLAGS") {
      r.flags = true;
    } else if (up == "INTERNALDATE") {
      r.internaldate = true;
    } else if (up == "RFC822.SIZE") {
      r.size = true;
    } else if (up == "RFC822" || up == "RFC822.HEADER" || up == "RFC822.TEXT") {
      fetch_section s;
      s.item_name = up;
      s.spec = up == "RFC822" ? "" : up == "RFC822.HEADER" ? "HEADER" : "TEXT";
      s.peek = up == "RFC822.HEADER";
      r.sections.push_back(std::move(s));
    } else if (text::istarts_with(up, "BODY[") || text::istarts_with(up, "BODY.PEEK[")) {
      fetch_section s;
      s.peek = text::istarts_with(up, "BODY.PEEK[");
      auto open = up.find('['), close = up.rfind(']');
      if (close == std::string::npos || close < open) {
        error = "Invalid section";
        return std::nullopt;
      }
      std::string_view sec = std::string_view(v->text).substr(open + 1, close - open - 1);
      // Part numbers first: "1.2.HEADER"
      while (!sec.empty() && sec[0] >= '0' && sec[0] <= '9') {
        auto dot = sec.find('.');
        auto num = text::parse_uint(sec.substr(0, dot), 100000);
        if (!num || *num == 0 || s.part.size() >= 100) {
          error = "Invalid section part";
          return std::nullopt;
        }
        s.part.push_back(static_cast<unsigned>(*num));
        sec = dot == std::string_view::npos ? std::string_view{} : sec.substr(dot + 1);
      }
      auto fields_open = sec.find(' ');
      s.spec = text::to_upper(sec.substr(0, fields_open));
      if (s.spec == "HEADER.FIELDS" || s.spec == "HEADER.FIELDS.NOT") {
        auto list = sec.substr(fields_open == std::string_view::npos ? sec.size() : fields_open + 1);
        if (list.size() < 2 || list.front() != '(' || list.back() != ')') {
          error = "Invalid header field list";
          return std::nullopt;
        }
        list = list.substr(1, list.size() - 2);
        while (!list.empty()) {
          auto sp = list.find(' ');
          auto f = list.substr(0, sp);
          if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
          if (!f.empty()) s.fields.emplace_back(f);
          list = sp == std::string_view::npos ? std::string_view{} : list.substr(sp + 1);
        }
      } else if (!s.spec.empty() && s.spec != "HEADER" && s.spec != "TEXT" && s.spec != "MIME") {
        error = "Invalid section";
        return std::nullopt;
      }
      if (s.spec == "MIME" && s.part.empty()) {
        error = "MIME needs a part number";
        return std::nullopt;
      }
      auto rest = std::string_view(v->text).substr(close + 1);
      s.item_name = "BODY[" + std::string(std::string_view(v->text).substr(open + 1, close - open - 1)) + "]";
      if (!rest.empty()) {  // <origin.count>
        auto dot = rest.find('.');
        if (rest.front() != '<' || rest.back() != '>' || dot == std::string_view::npos) {
          error = "Invalid partial";
          return std::nullopt;
        }
        auto o = text::parse_uint(rest.substr(1, dot - 1));
        auto n = text::parse_uint(rest.substr(dot + 1, rest.size() - dot - 2));
        if (!o || !n || *n == 0) {
          error = "Invalid partial";
          return std::nullopt;
        }
        s.partial = {*o, *n};
        s.item_name += "<" + std::to_string(*o) + ">";
      }
      r.sections.push_back(std::move(s));
    } else if (text::istarts_with(up, "BINARY[") || text::istarts_with(up, "BINARY.PEEK[") ||
               text::istarts_with(up, "BINARY.SIZE[")) {
      // RFC 3516: BINARY[part]<partial>, BINARY.PEEK[part]<partial>, BINARY.SIZE[part].
      fetch_section s;
      s.binary = true;
      s.binary_size = text::istarts_with(up, "BINARY.SIZE[");
      s.peek = s.binary_size || text::istarts_with(up, "BINARY.PEEK[");
      auto open = up.find('['), close = up.find(']');
      auto sec = std::string_view(up).substr(open + 1, close == std::string::npos ? 0 : close - open - 1);
      if (close == std::string::npos) {
        error = "Invalid section";
        return std::nullopt;
      }
      for (std::string_view rest = sec; !rest.empty();) {
        auto dot = rest.find('.');
        auto num = text::parse_uint(rest.substr(0, dot), 100000);
        if (!num || *num == 0 || s.part.size() >= 100 || dot + 1 == rest.size()) {
          error = "BINARY takes part numbers only";
          return std::nullopt;
        }
        s.part.push_back(static_cast<unsigned>(*num));
        rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
      }
      s.item_name = std::string(s.binary_size ? "BINARY.SIZE[" : "BINARY[") + std::string(sec) + "]";
      auto rest = std::string_view(up).substr(close + 1);
      if (!rest.empty()) {
        auto dot = rest.find('.');
        if (s.binary_size || rest.front() != '<' || rest.back() != '>' || dot == std::string_view::npos) {
          error = "Invalid partial";
          return std::nullopt;
        }
        auto o = text::parse_uint(rest.substr(1, dot - 1)).value_or(~0ull);
        auto n = text::parse_uint(rest.substr(dot + 1, rest.size() - dot - 2)).value_or(0);
        if (o == ~0ull || n == 0) {
          error = "Invalid partial";
          return std::nullopt;
        }
        s.partial = {o, n};
        s.item_name += "<" + std::to_string(o) + ">";
      }
      r.sections.push_back(std::move(s));
    } else {
      error = "Unknown fetch item " + v->text;
      return std::nullopt;
    }
  }
  return r;
}

task<result<std::string>> session::read_message(store::uid_t uid) {
  auto r = co_await mailbox_->open(uid);
  if (!r) co_return fail(r.error());
  std::string out;
  out.reserve((*r)->size());
  for (;;) {
    auto n = co_await (*r)->read(read_buf_);
    if (!n) co_return fail(n.error());
    if (*n == 0) break;
    out.append(read_buf_.data(), *n);
  }
  co_return out;
}

std::optional<std::string> session::section_bytes(std::string const& msg, fetch_section const& s, bool& unknown_cte) {
  std::string_view whole = msg;
  std::size_t head_begin = 0, body_begin = 0, end = msg.size();
  std::optional<mime::part> tree;
  if (!s.part.empty() || s.spec == "MIME") {
    auto parsed = mime::parse(msg);
    if (!parsed) return std::nullopt;
    tree = std::move(*parsed);
    mime::part const* p = &*tree;
    mime::part const* last = nullptr;
    for (std::size_t i = 0; i < s.part.size(); ++i) {
      auto n = s.part[i];
      if (p->is_message() && !p->children.empty()) p = &p->children[0];  // parts of an attached message
      if (p->multipart()) {
        if (n > p->children.size()) return std::string();
        p = &p->children[n - 1];
      } else if (n != 1 || (i > 0 && p == last)) {
        return std::string();  // a leaf has only part 1, itself, and nothing below it
      }
      last = p;
    }
    head_begin = p->begin;
    body_begin = p->body_begin;
    end = p->end;
    if (s.binary) {
      auto body = whole.substr(body_begin, end - body_begin);
      if (p->multipart() || p->is_message()) return std::string(body);
      auto decoded = mime::decode(body, p->header("Content-Transfer-Encoding").value_or(""));
      if (!decoded) unknown_cte = true;
      return decoded;
    }
    if ((s.spec == "HEADER" || s.spec == "TEXT" || s.spec.starts_with("HEADER.FIELDS")) && p->is_message() &&
        !p->children.empty()) {
      head_begin = p->children[0].begin;
      body_begin = p->children[0].body_begin;
      end = p->children[0].end;
    } else if (s.spec.empty() || s.spec == "MIME") {
      if (s.spec.empty()) return std::string(whole.substr(body_begin, end - body_begin));
      return std::string(whole.substr(head_begin, body_begin - head_begin));
    }
  } else {
    std::vector<mime::field> fields;
    auto b = mime::parse_header(msg, 0, fields);
    body_begin = b ? *b : msg.size();
    if (s.spec.empty()) return msg;
  }
  if (s.spec == "TEXT") return std::string(whole.substr(body_begin, end - body_begin));
  auto header = whole.substr(head_begin, body_begin - head_begin);
  if (s.spec == "HEADER") return std::string(header);
  // HEADER.FIELDS[.NOT]: the matching fields, then the empty line.
  bool negate = s.spec == "HEADER.FIELDS.NOT";
  std::string out;
  std::size_t pos = 0;
  while (pos < header.size()) {
    auto lf = header.find('\n', pos);
    auto line_end = lf == std::string_view::npos ? header.size() : lf + 1;
    // The field runs through its continuation lines.
    auto field_end = line_end;
    while (field_end < header.size() && (header[field_end] == ' ' || header[field_end] == '\t')) {
      auto next = header.find('\n', field_end);
      field_end = next == std::string_view::npos ? header.size() : next + 1;
    }
    auto line = header.substr(pos, field_end - pos);
    auto colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      auto name = line.substr(0, colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
      bool listed = std::any_of(s.fields.begin(), s.fields.end(), [&](auto const& f) { return text::iequals(f, name); });
      if (listed != negate) out += line;
    }
    pos = field_end;
    if (line.empty() || line == "\r\n" || line == "\n") break;
  }
  out += "\r\n";
  return out;
}

task<void> session::do_fetch(command const& c) {
  auto set = resolve_set(c.args[0].text, c.uid);
  if (!set) {
    bad(c.tag, "Invalid message set");
    co_return;
  }
  std::string error;
  auto req = parse_fetch(c.args, 1, c.uid, error);
  if (!req) {
    bad(c.tag, error);
    co_return;
  }
  if (c.args.size() == 3) {  // (CHANGEDSINCE n [VANISHED]), RFC 7162 3.1.4 and 3.2.6
    auto const& mods = c.args[2];
    std::optional<std::uint64_t> since;
    bool vanished = false;
    bool ok_mods = mods.k == value::kind::list;
    for (std::size_t i = 0; ok_mods && i < mods.items.size(); ++i) {
      if (mods.items[i].is_atom("CHANGEDSINCE") && i + 1 < mods.items.size() && !since)
        ok_mods = (since = text::parse_uint(mods.items[++i].text)).has_value();
      else if (mods.items[i].is_atom("VANISHED") && !vanished)
        vanished = true;
      else
        ok_mods = false;
    }
    if (!ok_mods || !since || (vanished && (!c.uid || !qresync_))) {
      bad(c.tag, vanished ? "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC" : "Unknown FETCH modifier");
      co_return;
    }
    req->changed_since = *since;
    req->modseq = true;
    if (vanished) {
      auto const& msgs = mailbox_->messages();
      // '*' reaches UIDNEXT-1 here: UIDs above the last message may be gone too.
      auto ranges = parse_sequence_set(c.args[0].text, mailbox_->uidnext() - 1);
      auto gone = ranges ? missing_uids(*ranges, msgs, mailbox_->uidnext()) : std::string();
      if (!gone.empty()) untagged("VANISHED (EARLIER) " + gone);
    }
  } else if (c.args.size() > 3) {
    bad(c.tag, "Too many FETCH arguments");
    co_return;
  }
  if (req->modseq) condstore_ = true;
  for (auto idx : *set) {
    auto const& m = mailbox_->messages()[idx];
    if (req->changed_since && m.modseq <= *req->changed_since) continue;
    std::string items;
    auto add = [&](std::string const& s) {
      if (!items.empty()) items += ' ';
      items += s;
    };
    bool mark_seen = false;
    std::vector<std::string> bodies;
    if (req->needs_body()) {
      auto msg = co_await read_message(m.uid);
      if (!msg) {
        if (msg.error() == store::errc::no_such_message) continue;  // expunged meanwhile
        no(c, "[SERVERBUG] Cannot read a message");
        co_return;
      }
      if (req->envelope || req->body || req->bodystructure) {
        auto tree = mime::parse(*msg);
        if (!tree) {
          no(c, "[PARSE] The message's MIME structure is beyond the limits");
          co_return;
        }
        if (req->envelope) bodies.push_back("ENVELOPE " + envelope(*tree));
        if (req->body) bodies.push_back("BODY " + body_structure(*msg, *tree, false));
        if (req->bodystructure) bodies.push_back("BODYSTRUCTURE " + body_structure(*msg, *tree, true));
      }
      for (auto const& s : req->sections) {
        bool unknown_cte = false;
        auto bytes = section_bytes(*msg, s, unknown_cte);
        if (unknown_cte) {
          no(c, "[UNKNOWN-CTE] The part's Content-Transfer-Encoding cannot be decoded");
          co_return;
        }
        if (!bytes) {
          no(c, "[PARSE] The message's MIME structure cannot be read");
          co_return;
        }
        if (s.binary_size) {
          bodies.push_back(s.item_name + " " + std::to_string(bytes->size()));
          continue;
        }
        if (s.partial) {
          auto [o, n] = *s.partial;
          *bytes = o >= bytes->size() ? std::string() : bytes->substr(o, n);
        }
        // RFC 3516: binary content goes out as literal8.
        bool nul = s.binary && bytes->find('\0') != std::string::npos;
        bodies.push_back(s.item_name + (nul ? " ~{" : " {") + std::to_string(bytes->size()) + "}\r\n" + *bytes);
        if (!s.peek && !mailbox_->read_only() && selected_rights_.has('s') && !m.flags.has(store::system_flag::seen))
          mark_seen = true;
      }
    }
    if (mark_seen) {  // a non-PEEK body fetch sets \Seen and reports the new flags
      store::flag_set f;
      f.set(store::system_flag::seen);
      std::vector<store::uid_t> one{m.uid};
      (void)co_await mailbox_->store(one, store::flag_op::add, f);
    }
    auto const& now = mailbox_->messages()[idx];
    if (req->uid) add("UID " + std::to_string(now.uid));
    if (req->flags || mark_seen) add("FLAGS (" + now.flags.to_imap() + ")");
    if (req->internaldate) add("INTERNALDATE " + imap_date(now.internal_date));
    if (req->size) add("RFC822.SIZE " + std::to_string(now.size));
    if (req->modseq) add("MODSEQ (" + std::to_string(now.modseq) + ")");
    for (auto& b : bodies) add(b);
    untagged(std::to_string(idx + 1) + " FETCH (" + items + ")");
    if (out_.size() > 256 * 1024)
      if (auto w = co_await flush(); !w) {
        logout_ = true;
        co_return;
      }
  }
  ok(c);
}

task<void> session::do_store(command const& c) {
  auto set = resolve_set(c.args[0].text, c.uid);
  if (!set) {
    bad(c.tag, "Invalid message set");
    co_return;
  }
  std::size_t a = 1;
  std::optional<store::modseq_t> unchanged_since;
  if (c.args.size() == 4) {  // (UNCHANGEDSINCE n), RFC 7162 3.1.3
    auto const& mods = c.args[1];
    std::optional<std::uint64_t> v;
    if (mods.k == value::kind::list && mods.items.size() == 2 && mods.items[0].is_atom("UNCHANGEDSINCE"))
      v = text::parse_uint(mods.items[1].text);
    if (!v) {
      bad(c.tag, "Unknown STORE modifier");
      co_return;
    }
    unchanged_since = *v;
    condstore_ = true;
    a = 2;
  }
  auto what = text::to_upper(c.args[a].text);
  bool silent = what.ends_with(".SILENT");
  if (silent) what.resize(what.size() - 7);
  store::flag_op op;
  if (what == "FLAGS") op = store::flag_op::replace;
  else if (what == "+FLAGS") op = store::flag_op::add;
  else if (what == "-FLAGS") op = store::flag_op::remove;
  else {
    bad(c.tag, "STORE needs FLAGS, +FLAGS or -FLAGS");
    co_return;
  }
  store::flag_set f;
  std::vector<value> one{c.args[a + 1]};
  auto const& list = c.args[a + 1].k == value::kind::list ? c.args[a + 1].items : one;
  for (auto const& v : list)
    if (!f.add_imap(v.text)) {
      bad(c.tag, "Invalid flag " + v.text);
      co_return;
    }
  if (mailbox_->read_only()) {
    no(c, "[READ-ONLY] The mailbox is read-only");
    co_return;
  }
  // RFC 4314 4: flags the user may not change are left alone without an error; FLAGS (replace)
  // would clear them, so it needs every flag right.
  auto const& my = selected_rights_;
  if (!(my.has('s') && my.has('t') && my.has('w'))) {
    if (op == store::flag_op::replace) {
      no(c, "[NOPERM] FLAGS needs the s, t and w rights; use +FLAGS or -FLAGS");
      co_return;
    }
    store::flag_set allowed;
    if (my.has('s')) allowed.set(store::system_flag::seen, f.has(store::system_flag::seen));
    if (my.has('t')) allowed.set(store::system_flag::deleted, f.has(store::system_flag::deleted));
    if (my.has('w')) {
      for (auto sf : {store::system_flag::answered, store::system_flag::flagged, store::system_flag::draft})
        allowed.set(sf, f.has(sf));
      allowed.keywords = f.keywords;
    }
    f = std::move(allowed);
  }
  std::vector<store::uid_t> uids;
  for (auto idx : *set) uids.push_back(mailbox_->messages()[idx].uid);
  auto r = co_await mailbox_->store(uids, op, f, unchanged_since);
  if (!r) {
    store_error(c, r.error());
    co_return;
  }
  for (auto idx : r->changed) {
    auto const& m = mailbox_->messages()[idx];
    // With CONDSTORE the new MODSEQ is reported even for .SILENT (RFC 7162 3.2).
    if (silent && !condstore_) continue;
    std::string items = silent ? std::string() : "FLAGS (" + m.flags.to_imap() + ")";
    if (c.uid || qresync_) items += (items.empty() ? "" : " ") + std::string("UID ") + std::to_string(m.uid);
    if (condstore_) items += (items.empty() ? "" : " ") + std::string("MODSEQ (") + std::to_string(m.modseq) + ")";
    untagged(std::to_string(idx + 1) + " FETCH (" + items + ")");
  }
  if (!r->modified.empty()) {
    std::vector<std::uint32_t> ids;
    for (auto uid : r->modified) {
      if (c.uid) ids.push_back(uid);
      else
        for (std::size_t i = 0; i < mailbox_->messages().size(); ++i)
          if (mailbox_->messages()[i].uid == uid) ids.push_back(static_cast<std::uint32_t>(i + 1));
    }
    std::sort(ids.begin(), ids.end());
    ok(c, "[MODIFIED " + compact_set(ids) + "] Conditional STORE failed");
    co_return;
  }
  ok(c);
}

// SEARCH keys over one message; the raw message is read only for header and text keys.
struct search_ctx {
  store::message_info const* m;
  std::size_t seq;
  std::string const* raw;
  std::uint32_t max_seq;  ///< what '*' means in a sequence set
  std::uint32_t max_uid;  ///< what '*' means in a UID set
  std::vector<store::uid_t> const* saved;  ///< what '$' means (RFC 5182)
};

task<void> session::do_copy(command const& c, bool move) {
  auto set = resolve_set(c.args[0].text, c.uid);
  auto dest = mailbox_arg(c.args[1]);
  if (!set || !dest) {
    bad(c.tag, "Invalid message set or mailbox");
    co_return;
  }
  if (move && mailbox_->read_only()) {
    no(c, "[READ-ONLY] The mailbox is read-only");
    co_return;
  }
  if (move && !(selected_rights_.has('t') && selected_rights_.has('e'))) {
    no(c, "[NOPERM] MOVE needs the 't' and 'e' rights on this mailbox");
    co_return;
  }
  auto where = co_await locate(*dest);
  if (!where) {
    if (where.error() == store::errc::no_such_mailbox) no(c, "[TRYCREATE] No such mailbox");
    else store_error(c, where.error());
    co_return;
  }
  if (!permitted(c, *where, 'i')) co_return;
  std::vector<store::uid_t> uids;
  for (auto idx : *set) uids.push_back(mailbox_->messages()[idx].uid);
  result<store::copy_result> r = fail(mailroom::errc::invalid_argument);
  if (where->acct->user() == selected_account_->user()) r = co_await mailbox_->copy(uids, where->name, move);
  else r = co_await copy_across(uids, *where, move);
  if (!r) {
    if (r.error() == store::errc::no_such_mailbox) no(c, "[TRYCREATE] No such mailbox");
    else store_error(c, r.error());
    co_return;
  }
  std::string src, dst;
  for (auto const& [s, d] : r->uids) {
    src += (src.empty() ? "" : ",") + std::to_string(s);
    dst += (dst.empty() ? "" : ",") + std::to_string(d);
  }
  std::string code = r->uids.empty() ? std::string() : "[COPYUID " + std::to_string(r->uidvalidity) + " " + src + " " + dst + "] ";
  if (move) {
    if (!code.empty()) untagged("OK " + code + "Moved");
    report_expunged(r->expunged);
    ok(c);
  } else {
    ok(c, code + "COPY completed");
  }
}

task<void> session::do_expunge(command const& c) {
  if (mailbox_->read_only()) {
    no(c, "[READ-ONLY] The mailbox is read-only");
    co_return;
  }
  if (!selected_rights_.has('e')) {
    no(c, "[NOPERM] You lack the 'e' right on this mailbox");
    co_return;
  }
  std::vector<store::uid_t> only;
  if (c.uid) {
    auto set = resolve_set(c.args[0].text, true);
    if (!set) {
      bad(c.tag, "Invalid UID set");
      co_return;
    }
    for (auto idx : *set) only.push_back(mailbox_->messages()[idx].uid);
  }
  result<std::vector<store::uid_t>> gone = fail(mailroom::errc::invalid_argument);
  if (c.uid) {
    std::optional<std::span<store::uid_t const>> span(only);
    gone = co_await mailbox_->expunge(span);
  } else {
    gone = co_await mailbox_->expunge();
  }
  if (!gone) {
    store_error(c, gone.error());
    co_return;
  }
  report_expunged(*gone);
  co_await report_changes();
  ok(c);
}

}  // namespace

namespace {

// Evaluates one SEARCH key at keys[i] (advancing i); err is set for malformed keys.
bool search_key(std::vector<value> const& keys, std::size_t& i, search_ctx const& x, std::string& err,
                std::size_t depth = 0) {
  if (i >= keys.size()) {
    err = "Missing search key";
    return false;
  }
  if (depth > 50) {
    err = "Search keys nested too deeply";
    return false;
  }
  auto const& k = keys[i++];
  auto const& f = x.m->flags;
  auto arg = [&]() -> value const* {
    if (i >= keys.size() || !keys[i].is_string_like()) {
      err = "Missing argument for " + k.text;
      return nullptr;
    }
    return &keys[i++];
  };
  if (k.k == value::kind::list) {
    bool all = true;
    std::size_t j = 0;
    while (j < k.items.size()) {
      bool r = search_key(k.items, j, x, err, depth + 1);
      if (!err.empty()) return false;
      all = all && r;
    }
    return all;
  }
  auto up = text::to_upper(k.text);
  using sf = store::system_flag;
  if (up == "ALL") return true;
  if (up == "ANSWERED") return f.has(sf::answered);
  if (up == "UNANSWERED") return !f.has(sf::answered);
  if (up == "DELETED") return f.has(sf::deleted);
  if (up == "UNDELETED") return !f.has(sf::deleted);
  if (up == "DRAFT") return f.has(sf::draft);
  if (up == "UNDRAFT") return !f.has(sf::draft);
  if (up == "FLAGGED") return f.has(sf::flagged);
  if (up == "UNFLAGGED") return !f.has(sf::flagged);
  if (up == "SEEN") return f.has(sf::seen);
  if (up == "UNSEEN") return !f.has(sf::seen);
  if (up == "RECENT") return x.m->recent;
  if (up == "OLD") return !x.m->recent;
  if (up == "NEW") return x.m->recent && !f.has(sf::seen);
  if (up == "KEYWORD" || up == "UNKEYWORD") {
    auto a = arg();
    if (!a) return false;
    return f.has_keyword(a->text) == (up == "KEYWORD");
  }
  if (up == "LARGER" || up == "SMALLER") {
    auto a = arg();
    if (!a) return false;
    auto n = text::parse_uint(a->text);
    if (!n) {
      err = "Invalid number";
      return false;
    }
    return up == "LARGER" ? x.m->size > *n : x.m->size < *n;
  }
  if (up == "BEFORE" || up == "ON" || up == "SINCE") {
    auto a = arg();
    if (!a) return false;
    auto day = parse_date(a->text);
    if (!day) {
      err = "Invalid date";
      return false;
    }
    auto d = x.m->internal_date;
    if (up == "BEFORE") return d < *day;
    if (up == "ON") return d >= *day && d < *day + 86400;
    return d >= *day;
  }
  if (up == "NOT") return !search_key(keys, i, x, err, depth + 1) && err.empty();
  if (up == "OR") {
    bool a = search_key(keys, i, x, err, depth + 1);
    bool b = search_key(keys, i, x, err, depth + 1);
    return err.empty() && (a || b);
  }
  if (up == "MODSEQ") {  // RFC 7162 3.1.5; the optional entry name and type are accepted
      if (i + 2 < keys.size() && keys[i].k == value::kind::string) i += 2;
    auto a = arg();
    if (!a) return false;
    auto n = text::parse_uint(a->text);
    if (!n) {
      err = "Invalid MODSEQ";
      return false;
    }
    return x.m->modseq >= *n;
  }
  if (up == "UID") {
    auto a = arg();
    if (!a) return false;
    if (a->text == "$") return std::binary_search(x.saved->begin(), x.saved->end(), x.m->uid);
    auto set = parse_sequence_set(a->text, x.max_uid);
    if (!set) {
      err = "Invalid UID set";
      return false;
    }
    return contains(*set, x.m->uid);
  }
  if (up == "HEADER" || up == "SUBJECT" || up == "FROM" || up == "TO" || up == "CC" || up == "BCC") {
    std::string field = up;
    if (up == "HEADER") {
      auto name = arg();
      if (!name) return false;
      field = name->text;
    }
    auto needle = arg();
    if (!needle) return false;
    std::vector<mime::field> fields;
    (void)mime::parse_header(*x.raw, 0, fields);
    for (auto const& fl : fields)
      if (text::iequals(fl.name, field) && icontains(mime::unfold(fl.value), needle->text)) return true;
    return false;
  }
  if (up == "BODY" || up == "TEXT") {
    auto needle = arg();
    if (!needle) return false;
    std::string_view hay = *x.raw;
    if (up == "BODY") {
      std::vector<mime::field> fields;
      auto b = mime::parse_header(*x.raw, 0, fields);
      hay = hay.substr(b ? *b : hay.size());
    }
    return icontains(hay, needle->text);
  }
  if (k.text == "$" && k.k == value::kind::atom) return std::binary_search(x.saved->begin(), x.saved->end(), x.m->uid);
  if (!k.text.empty() && (std::isdigit(static_cast<unsigned char>(k.text[0])) || k.text[0] == '*')) {
    auto set = parse_sequence_set(k.text, x.max_seq);
    if (!set) {
      err = "Invalid sequence set";
      return false;
    }
    return contains(*set, static_cast<std::uint32_t>(x.seq));
  }
  err = "Unknown or unsupported search key " + k.text;
  return false;
}

bool needs_raw(std::vector<value> const& keys) {
  for (auto const& k : keys) {
    if (k.k == value::kind::list && needs_raw(k.items)) return true;
    auto up = text::to_upper(k.text);
    if (up == "HEADER" || up == "SUBJECT" || up == "FROM" || up == "TO" || up == "CC" || up == "BCC" || up == "BODY" ||
        up == "TEXT")
      return true;
  }
  return false;
}


}  // namespace

namespace {
task<std::vector<std::size_t>> session::matching(std::vector<value> const& keys, std::string& err) {
  auto const& msgs = mailbox_->messages();
  auto max_seq = static_cast<std::uint32_t>(msgs.size());
  auto max_uid = msgs.empty() ? 0u : msgs.back().uid;
  bool raw_needed = needs_raw(keys);
  std::vector<std::size_t> hits;
  for (std::size_t idx = 0; idx < msgs.size(); ++idx) {
    std::string raw;
    if (raw_needed) {
      auto m = co_await read_message(msgs[idx].uid);
      if (!m) continue;
      raw = std::move(*m);
    }
    search_ctx x{&msgs[idx], idx + 1, &raw, max_seq, max_uid, &saved_};
    bool all = true;
    std::size_t i = 0;
    while (i < keys.size()) {
      bool r = search_key(keys, i, x, err);
      if (!err.empty()) co_return hits;
      all = all && r;
    }
    if (all) hits.push_back(idx);
  }
  co_return hits;
}

task<void> session::do_search(command const& c) {
  std::vector<value> keys(c.args.begin(), c.args.end());
  std::size_t start = 0;
  // RFC 4731 / RFC 9051 6.4.4.1 result options; RFC 5182 SAVE.
  bool ret_min = false, ret_max = false, ret_all = false, ret_count = false, ret_save = false, esearch = rev2_;
  if (keys.size() >= 2 && keys[0].is_atom("RETURN") && keys[1].k == value::kind::list) {
    esearch = true;
    for (auto const& o : keys[1].items) {
      if (o.is_atom("MIN")) ret_min = true;
      else if (o.is_atom("MAX")) ret_max = true;
      else if (o.is_atom("ALL")) ret_all = true;
      else if (o.is_atom("COUNT")) ret_count = true;
      else if (o.is_atom("SAVE")) ret_save = true;
      else {
        bad(c.tag, "Unknown SEARCH result option " + o.text);
        co_return;
      }
    }
    if (keys[1].items.empty()) ret_all = true;  // RETURN () means ALL
    start = 2;
  } else {
    ret_all = true;
  }
  if (keys.size() >= start + 2 && keys[start].is_atom("CHARSET")) {
    if (!text::iequals(keys[start + 1].text, "UTF-8") && !text::iequals(keys[start + 1].text, "US-ASCII")) {
      no(c, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
      co_return;
    }
    start += 2;
  }
  keys.erase(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(start));
  if (keys.empty()) {
    bad(c.tag, "Missing search keys");
    co_return;
  }
  auto const& msgs = mailbox_->messages();
  std::string err;
  auto found = co_await matching(keys, err);
  if (!err.empty()) {
    if (ret_save) saved_.clear();  // a failed SEARCH ... SAVE empties $ (RFC 5182 2.1)
    bad(c.tag, err);
    co_return;
  }
  std::vector<std::uint32_t> hits;
  for (auto idx : found) hits.push_back(c.uid ? msgs[idx].uid : static_cast<std::uint32_t>(idx + 1));
  auto uid_of = [&](std::uint32_t h) { return c.uid ? h : msgs[h - 1].uid; };
  if (ret_save) {
    // With MIN and/or MAX (and neither ALL nor COUNT) only those are saved (RFC 5182 2.4).
    saved_.clear();
    if ((ret_min || ret_max) && !ret_all && !ret_count) {
      if (!hits.empty() && ret_min) saved_.push_back(uid_of(hits.front()));
      if (!hits.empty() && ret_max && (!ret_min || hits.size() > 1)) saved_.push_back(uid_of(hits.back()));
    } else {
      for (auto h : hits) saved_.push_back(uid_of(h));
    }
  }
  bool by_modseq = std::any_of(keys.begin(), keys.end(), [](value const& k) { return k.is_atom("MODSEQ"); });
  store::modseq_t top = 0;
  if (by_modseq) {
    condstore_ = true;
    for (auto h : hits) {
      auto idx = c.uid ? static_cast<std::size_t>(std::lower_bound(msgs.begin(), msgs.end(), h, [](store::message_info const& m, std::uint32_t u) { return m.uid < u; }) - msgs.begin()) : h - 1;
      if (idx < msgs.size()) top = std::max(top, msgs[idx].modseq);
    }
  }
  bool save_only = ret_save && !ret_min && !ret_max && !ret_count && !ret_all;
  if (save_only) {
    // RFC 5182 2.1: SAVE alone produces no ESEARCH response.
  } else if (esearch) {
    std::string line = "ESEARCH (TAG " + astring(c.tag) + ")";
    if (c.uid) line += " UID";
    if (!hits.empty() && ret_min) line += " MIN " + std::to_string(hits.front());
    if (!hits.empty() && ret_max) line += " MAX " + std::to_string(hits.back());
    if (!hits.empty() && ret_all) line += " ALL " + compact_set(hits);
    if (ret_count) line += " COUNT " + std::to_string(hits.size());
    if (top) line += " MODSEQ " + std::to_string(top);
    untagged(line);
  } else {
    std::string line = "SEARCH";
    for (auto h : hits) line += " " + std::to_string(h);
    if (top) line += " (MODSEQ " + std::to_string(top) + ")";
    untagged(line);
  }
  ok(c);
}

// SORT (criteria) charset keys / THREAD algorithm charset keys — RFC 5256.
task<void> session::do_sort(command const& c, bool thread) {
  std::size_t need = 3;
  if (c.args.size() < need) {
    bad(c.tag, thread ? "THREAD needs an algorithm, a charset and search keys" : "SORT needs criteria, a charset and search keys");
    co_return;
  }
  std::vector<sort_criterion> by;
  thread_algorithm alg = thread_algorithm::references;
  if (thread) {
    auto a = c.args[0].k == value::kind::atom ? parse_thread_algorithm(c.args[0].text) : std::nullopt;
    if (!a) {
      bad(c.tag, "Unknown threading algorithm");
      co_return;
    }
    alg = *a;
  } else {
    std::vector<std::string_view> atoms;
    if (c.args[0].k == value::kind::list)
      for (auto const& v : c.args[0].items)
        if (v.k == value::kind::atom) atoms.push_back(v.text);
    auto crit = c.args[0].k == value::kind::list && atoms.size() == c.args[0].items.size()
                    ? parse_sort_criteria(atoms)
                    : std::nullopt;
    if (!crit) {
      bad(c.tag, "Invalid sort criteria");
      co_return;
    }
    by = std::move(*crit);
  }
  if (!text::iequals(c.args[1].text, "UTF-8") && !text::iequals(c.args[1].text, "US-ASCII")) {
    no(c, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
    co_return;
  }
  std::vector<value> keys(c.args.begin() + 2, c.args.end());
  std::string err;
  auto found = co_await matching(keys, err);
  if (!err.empty()) {
    bad(c.tag, err);
    co_return;
  }
  // The header of each matching message (the keys need only the header block).
  auto const& msgs = mailbox_->messages();
  std::vector<std::string> headers;
  headers.reserve(found.size());
  bool needs_header = thread || std::any_of(by.begin(), by.end(), [](sort_criterion const& k) {
    return k.key != sort_key::arrival && k.key != sort_key::size;
  });
  for (auto idx : found) {
    std::string h;
    if (needs_header) {
      auto m = co_await read_message(msgs[idx].uid);
      if (m) {
        std::vector<mime::field> fields;
        auto end = mime::parse_header(*m, 0, fields);
        h = m->substr(0, end ? *end : m->size());
      }
    }
    headers.push_back(std::move(h));
  }
  std::vector<sort_message> in;
  in.reserve(found.size());
  for (std::size_t i = 0; i < found.size(); ++i) {
    auto const& m = msgs[found[i]];
    in.push_back({static_cast<std::uint32_t>(found[i] + 1), m.uid, m.internal_date, m.size, headers[i]});
  }
  if (thread) {
    untagged("THREAD " + thread_messages(in, alg, c.uid));
  } else {
    std::string line = "SORT";
    for (auto i : sort_messages(in, by)) line += " " + std::to_string(c.uid ? in[i].uid : in[i].seq);
    untagged(line);
  }
  ok(c);
}

task<void> run_session(std::shared_ptr<server::impl> self, std::unique_ptr<net::stream> stream,
                       asio::ip::tcp::endpoint remote, listener_options lo) {
  session s(*self, std::move(stream), remote, std::move(lo));
  net::server_core::guard g(self->core, s);
  try {
    co_await s.run();
  } catch (std::exception const& e) {
    self->log.error("session ended by exception", {{"error", e.what()}});
  }
}

}  // namespace

server::server(executor ex, server_options opts, log::logger logger)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts), std::move(logger))) {}

server::~server() { impl_->core->close_all(); }

std::size_t server::active_sessions() const noexcept { return impl_->core->active_sessions(); }

result<asio::ip::tcp::endpoint> server::listen(listener_options const& opts) {
  auto self = impl_;
  auto ep = impl_->core->listen(
      opts.endpoint, opts.reuse_port,
      [self, opts](std::unique_ptr<net::tcp_stream> s, asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint) {
        return run_session(self, std::move(s), remote, opts);
      },
      opts.implicit_tls ? "implicit-tls" : "plain");
  return ep;
}

task<void> server::shutdown(std::chrono::milliseconds grace) { return impl_->core->shutdown(grace); }

}  // namespace mailroom::imap
