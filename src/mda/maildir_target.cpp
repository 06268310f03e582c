#include "mailroom/mda/maildir_target.hpp"

#include <sys/stat.h>

#include "mailroom/core/text.hpp"

namespace mailroom::mda {

maildir_target::maildir_target(maildir_target_options opts, blocking_pool& pool, log::logger logger)
    : opts_(std::move(opts)), pool_(pool), log_(logger.with_component("mda")) {}

std::optional<std::string> maildir_target::user_for(address const& rcpt) const {
  std::string_view local = rcpt.local;
  if (opts_.extension_separator) {
    auto sep = local.find(opts_.extension_separator);
    if (sep != std::string_view::npos && sep > 0) local = local.substr(0, sep);
  }
  // A user name becomes a directory name: no separators, no dot names, printable, bounded.
  if (local.empty() || local.size() > 64 || local == "." || local == ".." || local.front() == '.') return std::nullopt;
  for (unsigned char c : local)
    if (c <= ' ' || c == '/' || c == '\\' || c == 0x7f) return std::nullopt;
  if (!text::is_valid_utf8(local)) return std::nullopt;
  return text::to_lower(local);
}

std::optional<smtp::reply> maildir_target::check_recipient(address const& rcpt) const {
  auto user = user_for(rcpt);
  if (!user) return smtp::reply{550, {5, 1, 3}, "Bad destination mailbox address syntax"};
  struct stat st {};
  if (!opts_.create_users && ::stat((opts_.root + "/" + *user).c_str(), &st) != 0)
    return smtp::reply{550, {5, 1, 1}, "<" + rcpt.to_string() + ">: User unknown"};
  return std::nullopt;
}

result<std::shared_ptr<store::maildir::directory>> maildir_target::maildir(std::string const& user) {
  std::lock_guard lock(mutex_);
  if (auto it = dirs_.find(user); it != dirs_.end()) return it->second;
  auto home = opts_.root + "/" + user;
  struct stat st {};
  if (!opts_.create_users && ::stat(home.c_str(), &st) != 0) return fail(errc::not_found);
  auto dir = store::maildir::directory::open(home + "/Maildir", pool_);  // durably creates home too
  if (!dir) return fail(dir.error());
  dirs_.emplace(user, *dir);
  return *dir;
}

namespace {

class maildir_delivery final : public delivery::delivery {
 public:
  maildir_delivery(std::shared_ptr<maildir_target> target, address from)
      : target_(std::move(target)), from_(std::move(from)) {}

  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
    auto user = target_->user_for(to);
    if (!user) co_return smtp::reply{550, {5, 1, 3}, "Bad destination mailbox address syntax"};
    for (auto const& r : rcpts_)
      if (r.user == *user) co_return std::nullopt;  // one copy per mailbox
    auto dir = target_->maildir(*user);
    if (!dir) {
      if (dir.error() == errc::not_found) co_return smtp::reply{550, {5, 1, 1}, "User unknown"};
      co_return smtp::reply{451, {4, 3, 0}, "Mailbox not available, try again later"};
    }
    rcpts_.push_back({*user, to.to_string(), *dir, nullptr});
    co_return std::nullopt;
  }

  task<result<void>> body(smtp::message_source& src) override {
    if (rcpts_.empty()) co_return fail(errc::invalid_argument);
    for (auto& r : rcpts_) {
      auto w = store::maildir::writer::create(r.dir);
      if (!w) co_return fail(w.error());
      r.w = std::move(*w);
      std::string head = "Return-Path: <" + from_.to_string() + ">\r\nDelivered-To: " + r.address + "\r\n";
      if (auto ok = r.w->write(head); !ok) co_return fail(ok.error());
    }
    for (;;) {
      auto piece = co_await src.read();
      if (!piece) co_return fail(piece.error());
      if (piece->empty()) break;
      for (auto& r : rcpts_)
        if (auto ok = r.w->write(*piece); !ok) co_return fail(ok.error());
    }
    co_return result<void>{};
  }

  task<result<std::string>> commit() override {
    std::string names;
    for (auto& r : rcpts_) {
      if (!r.w) co_return fail(errc::invalid_argument);
      auto name = co_await r.w->commit();
      if (!name) co_return fail(name.error());
      if (!names.empty()) names += ' ';
      names += r.user + "/" + name->substr(0, name->find(','));
    }
    co_return names;
  }

  void abort() noexcept override {
    for (auto& r : rcpts_)
      if (r.w) r.w->abort();
  }

 private:
  struct rcpt {
    std::string user;
    std::string address;
    std::shared_ptr<store::maildir::directory> dir;
    std::unique_ptr<store::maildir::writer> w;
  };
  std::shared_ptr<maildir_target> target_;
  address from_;
  std::vector<rcpt> rcpts_;
};

}  // namespace

task<result<std::unique_ptr<delivery::delivery>>> maildir_target::start(delivery::message_context const&,
                                                                        address const& from) {
  co_return std::make_unique<maildir_delivery>(shared_from_this(), from);
}

}  // namespace mailroom::mda
