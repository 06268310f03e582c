#include "mailroom/mta/inbound.hpp"

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <system_error>

#include "mailroom/smtp/error.hpp"

namespace mailroom::mta {

std::string rfc5322_date(std::chrono::system_clock::time_point when) {
  static constexpr char const* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr char const* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
                months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string protocol_name(smtp::session_info const& info) {
  std::string p = info.proto == smtp::protocol::lmtp ? "LMTP" : info.esmtp ? "ESMTP" : "SMTP";
  if (info.tls) p += "S";
  if (info.auth) p += "A";
  return p;
}

std::string received_header(smtp::session_info const& info, std::string_view by_host, std::string_view protocol,
                            std::string_view id, std::chrono::system_clock::time_point when) {
  // The HELO name is the client's claim; only printable ASCII goes into the header.
  std::string helo;
  for (char c : info.helo) helo += (c > 32 && c < 127 && c != '(' && c != ')') ? c : '?';
  std::string r = "Received: from " + (helo.empty() ? std::string("unknown") : helo) + " ([" +
                  info.remote.address().to_string() + "])\r\n\tby " + std::string(by_host) + " (mailroom) with " +
                  std::string(protocol);
  if (info.tls) r += " (" + info.tls->version + " " + info.tls->cipher + ")";
  r += " id " + std::string(id) + ";\r\n\t" + rfc5322_date(when) + "\r\n";
  return r;
}

smtp::reply storage_error_reply(std::error_code const& ec) {
  // EDQUOT is no std::errc value, so system_category does not map it to a generic condition.
  bool errno_category = ec.category() == std::system_category() || ec.category() == std::generic_category();
  if (ec == std::errc::no_space_on_device || (errno_category && ec.value() == EDQUOT))
    return smtp::replies::insufficient_storage();
  return smtp::replies::local_error();
}

namespace {

// The message as the target sees it: the Received: line, then the client's bytes.
class prefixed_source final : public smtp::message_source {
 public:
  prefixed_source(std::string prefix, smtp::message_source& rest) : prefix_(std::move(prefix)), rest_(rest) {}
  task<result<std::span<char const>>> read() override {
    if (!sent_prefix_) {
      sent_prefix_ = true;
      if (!prefix_.empty()) co_return std::span<char const>(prefix_.data(), prefix_.size());
    }
    co_return co_await rest_.read();
  }
  std::uint64_t size() const noexcept override { return rest_.size(); }

 private:
  std::string prefix_;
  smtp::message_source& rest_;
  bool sent_prefix_ = false;
};

class inbound_handler final : public smtp::session_handler {
 public:
  inbound_handler(inbound_options const& opts, log::logger const& log, smtp::session_info const& info)
      : opts_(opts), log_(log), info_(info) {
    if (!opts_.filters.empty()) chain_ = std::make_unique<filter::chain_session>(opts_.filters, log_);
  }

  /// The filters' view of the new connection; a reply refuses it.
  task<std::optional<smtp::reply>> connect() {
    if (!chain_) co_return std::nullopt;
    co_return co_await chain_->connect(info_);
  }

  task<smtp::reply> on_helo(std::string_view name) override {
    if (chain_)
      if (auto refused = co_await chain_->helo(info_, name)) co_return *refused;
    co_return smtp::replies::ok();
  }

  task<smtp::reply> on_mail(address const& from, smtp::mail_params const& params) override {
    if (delivery_) delivery_->abort();
    if (chain_)
      if (auto refused = co_await chain_->mail(info_, from, params)) {
        delivery_.reset();
        co_return *refused;
      }
    delivery::message_context ctx;
    ctx.session_id = info_.id;
    ctx.client = info_.remote;
    ctx.helo = info_.helo;
    ctx.protocol = protocol_name(info_);
    ctx.auth_user = info_.auth ? info_.auth->user : "";
    ctx.params = params;
    size_hint_ = params.size.value_or(0);
    auto d = co_await opts_.target->start(ctx, from);
    if (!d) {
      log_.error("cannot start a delivery", {{"error", d.error().message()}});
      co_return storage_error_reply(d.error());
    }
    delivery_ = std::move(*d);
    co_return smtp::replies::sender_ok();
  }

  task<smtp::reply> on_rcpt(address const& to, smtp::rcpt_params const& params) override {
    if (opts_.relay)
      if (auto refused = opts_.relay->check(info_, to)) co_return *refused;
    if (opts_.local_recipient_check && (!opts_.relay || to.domain.empty() || opts_.relay->is_local(to.domain)))
      if (auto refused = co_await opts_.local_recipient_check(to, size_hint_)) co_return *refused;
    if (!delivery_) co_return smtp::replies::bad_sequence();
    if (chain_)
      if (auto refused = co_await chain_->rcpt(to)) co_return *refused;
    if (auto refused = co_await delivery_->add_rcpt(to, params)) co_return *refused;
    if (chain_) chain_->accepted(to);
    co_return smtp::replies::recipient_ok();
  }

  task<smtp::reply> on_data(smtp::message_source& body) override {
    if (!delivery_) co_return smtp::replies::bad_sequence();
    std::string received;
    if (opts_.add_received)
      received = received_header(info_, opts_.hostname, protocol_name(info_), info_.id,
                                 std::chrono::system_clock::now());
    result<void> stored;
    bool hold = false;
    if (!chain_) {
      prefixed_source src(std::move(received), body);
      stored = co_await delivery_->body(src);
    } else {
      // With any filter, the message is held (within the size limit) so that forged
      // Authentication-Results in our name can be removed (RFC 8601 5), and examined.
      std::string content;
      {
        auto all = co_await smtp::read_all(body);
        if (!all) {
          delivery_->abort();
          if (all.error().category() == smtp::category()) co_return smtp::replies::local_error();
          co_return storage_error_reply(all.error());
        }
        content = std::move(*all);
      }
      auto const host = opts_.hostname;
      auto out = co_await chain_->message(content, host);
      if (out.what == filter::verdict::kind::reject || out.what == filter::verdict::kind::tempfail) {
        delivery_->abort();
        co_return *out.reply;
      }
      if (out.what == filter::verdict::kind::discard) {
        delivery_->abort();
        log_.notice("message discarded by a filter", {{"session", info_.id}});
        co_return smtp::replies::ok("Ok: discarded");
      }
      if (out.what == filter::verdict::kind::quarantine) hold = true;
      received += out.headers;
      std::string_view const final_content = out.message ? std::string_view(*out.message) : std::string_view(content);
      smtp::memory_source src(final_content, std::move(received));
      stored = co_await delivery_->body(src);
    }
    if (!stored) {
      delivery_->abort();
      // Size and bare-LF errors get the server's own reply; anything else is ours to report.
      if (stored.error().category() == smtp::category()) co_return smtp::replies::local_error();
      log_.error("cannot store the message", {{"error", stored.error().message()}});
      co_return storage_error_reply(stored.error());
    }
    if (hold && !delivery_->hold()) log_.warning("quarantine asked, but the target cannot hold; delivered", {{"session", info_.id}});
    auto id = co_await delivery_->commit();
    if (!id) {
      delivery_->abort();
      log_.error("cannot commit the message", {{"error", id.error().message()}});
      co_return storage_error_reply(id.error());
    }
    co_return smtp::replies::queued(*id);
  }

  void on_reset() override {
    if (delivery_) delivery_->abort();
    delivery_.reset();
    if (chain_) chain_->reset();
  }
  void on_close() override { on_reset(); }

 private:
  inbound_options const& opts_;
  log::logger const& log_;
  smtp::session_info const& info_;
  std::unique_ptr<delivery::delivery> delivery_;
  std::unique_ptr<filter::chain_session> chain_;
  std::uint64_t size_hint_ = 0;
};

}  // namespace

inbound::inbound(inbound_options opts, log::logger logger) : opts_(std::move(opts)), log_(logger.with_component("inbound")) {}

task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> inbound::new_session(smtp::session_info const& info) {
  auto h = std::make_unique<inbound_handler>(opts_, log_, info);
  if (auto refused = co_await h->connect()) co_return unexpected(std::move(*refused));
  co_return std::unique_ptr<smtp::session_handler>(std::move(h));
}

}  // namespace mailroom::mta
