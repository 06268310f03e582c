#include "mailroom/store/memory/store.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include "../detail/view.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::store::memory {
namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct stored_message {
  message_info info;
  std::shared_ptr<std::string const> body;
};

struct mailbox_data {
  std::string name;
  special_use use = special_use::none;
  std::uint32_t uidvalidity = 0;
  uid_t uidnext = 1;
  modseq_t highest_modseq = 1;
  std::map<uid_t, stored_message> messages;
  detail::change_notifier notifier;
  std::map<std::string, rights, std::less<>> acl;  ///< identifier -> rights; moves with the mailbox on rename

  std::vector<acl_entry> acl_entries() const {
    std::vector<acl_entry> out;
    for (auto const& [id, r] : acl) out.push_back({id, r});
    return out;
  }
};

bool is_inferior(std::string_view name, std::string_view of) {
  return name.size() > of.size() && name.substr(0, of.size()) == of && name[of.size()] == delimiter;
}

}  // namespace

struct store::account_data {
  std::string user;
  options opts;
  std::mutex mutex;
  std::uint32_t next_uidvalidity = static_cast<std::uint32_t>(now_seconds());
  std::map<std::string, std::shared_ptr<mailbox_data>> mailboxes;
  std::set<std::string> subscriptions;

  std::shared_ptr<mailbox_data> add_mailbox(std::string name, special_use use) {
    auto mb = std::make_shared<mailbox_data>();
    mb->name = name;
    mb->use = use;
    mb->uidvalidity = next_uidvalidity++;
    mailboxes.emplace(std::move(name), mb);
    return mb;
  }
  std::shared_ptr<mailbox_data> find(std::string_view name) {
    auto it = mailboxes.find(std::string(name));
    return it == mailboxes.end() ? nullptr : it->second;
  }
  quota_usage usage() const {
    quota_usage q{0, opts.storage_limit, 0, opts.messages_limit};
    for (auto const& [_, mb] : mailboxes)
      for (auto const& [__, m] : mb->messages) {
        q.storage_used += m.info.size;
        ++q.messages_used;
      }
    return q;
  }
};

namespace {
using account_data = store::account_data;

// Inserts a message; the caller holds the account mutex.
uid_t insert(mailbox_data& mb, message_info info, std::shared_ptr<std::string const> body) {
  info.uid = mb.uidnext++;
  info.modseq = ++mb.highest_modseq;
  info.recent = true;
  mb.messages.emplace(info.uid, stored_message{std::move(info), std::move(body)});
  return mb.uidnext - 1;
}

class reader final : public message_reader {
 public:
  explicit reader(std::shared_ptr<std::string const> body) : body_(std::move(body)) {}
  std::uint64_t size() const noexcept override { return body_->size(); }
  task<result<std::size_t>> read(std::span<char> buf) override {
    auto n = std::min(buf.size(), body_->size() - pos_);
    std::copy_n(body_->data() + pos_, n, buf.data());
    pos_ += n;
    co_return n;
  }

 private:
  std::shared_ptr<std::string const> body_;
  std::size_t pos_ = 0;
};

class memory_appender final : public appender {
 public:
  memory_appender(std::shared_ptr<account_data> acct, std::string name, append_options opts)
      : acct_(std::move(acct)), name_(std::move(name)), opts_(std::move(opts)) {}

  result<void> write(std::span<char const> data) override {
    if (done_) return fail(std::make_error_code(std::errc::bad_file_descriptor));
    body_.append(data.data(), data.size());
    return {};
  }

  task<result<append_result>> commit() override {
    if (done_) co_return fail(std::make_error_code(std::errc::bad_file_descriptor));
    done_ = true;
    std::shared_ptr<mailbox_data> mb;
    append_result out;
    {
      std::lock_guard lock(acct_->mutex);
      mb = acct_->find(name_);
      if (!mb) co_return fail(errc::no_such_mailbox);
      if (opts_.check_quota && acct_->usage().would_exceed(body_.size())) co_return fail(errc::over_quota);
      message_info info;
      info.flags = opts_.flags;
      info.internal_date = opts_.internal_date.value_or(now_seconds());
      info.size = body_.size();
      auto uid = insert(*mb, std::move(info), std::make_shared<std::string const>(std::move(body_)));
      out = {mb->uidvalidity, opts_.assign_uid ? uid : 0};
    }
    mb->notifier.notify();
    co_return out;
  }

  void abort() noexcept override {
    done_ = true;
    body_.clear();
  }

 private:
  std::shared_ptr<account_data> acct_;
  std::string name_;
  append_options opts_;
  std::string body_;
  bool done_ = false;
};

class memory_mailbox final : public mailbox {
 public:
  memory_mailbox(std::shared_ptr<account_data> acct, std::shared_ptr<mailbox_data> mb, bool read_only)
      : acct_(std::move(acct)), mb_(std::move(mb)), read_only_(read_only), uidvalidity_(mb_->uidvalidity) {}

  std::string const& name() const noexcept override { return mb_->name; }
  bool read_only() const noexcept override { return read_only_; }
  std::uint32_t uidvalidity() const noexcept override { return uidvalidity_; }
  std::vector<message_info> const& messages() const noexcept override { return view_; }
  uid_t uidnext() const noexcept override { return uidnext_; }
  modseq_t highest_modseq() const noexcept override { return seen_modseq_; }

  task<result<sync_changes>> sync() override { co_return sync_now(); }

  result<sync_changes> sync_now() {
    std::vector<message_info> current;
    modseq_t seen = seen_modseq_;
    {
      std::lock_guard lock(acct_->mutex);
      auto live = acct_->find(mb_->name);
      if (live != mb_) {  // deleted (and perhaps re-created) under us
        sync_changes out;
        out.uidvalidity_changed = true;
        for (auto const& m : view_) out.expunged.push_back(m.uid);
        view_.clear();
        if (!live) return out;
        mb_ = live;
        uidvalidity_ = live->uidvalidity;
        seen = 0;
      }
      generation_ = mb_->notifier.generation();
      current.reserve(mb_->messages.size());
      for (auto& [uid, m] : mb_->messages) {
        current.push_back(m.info);
        if (!read_only_) m.info.recent = false;  // \Recent goes to the first session that sees it
        else current.back().recent = false;
      }
      uidnext_ = mb_->uidnext;
      seen_modseq_ = mb_->highest_modseq;
    }
    auto changes = detail::replace_view(view_, std::move(current), seen);
    if (uidvalidity_ != mb_->uidvalidity) changes.uidvalidity_changed = true;
    return changes;
  }

  task<void> wait_for_change(std::chrono::steady_clock::duration max) override {
    return mb_->notifier.wait(generation_, max);
  }

  task<result<std::unique_ptr<message_reader>>> open(uid_t uid) override {
    std::lock_guard lock(acct_->mutex);
    auto it = mb_->messages.find(uid);
    if (it == mb_->messages.end()) co_return fail(errc::no_such_message);
    co_return std::make_unique<reader>(it->second.body);
  }

  task<result<store_flags_result>> store(std::span<uid_t const> uids, flag_op op, flag_set const& f,
                                         std::optional<modseq_t> unchanged_since) override {
    if (read_only_) co_return fail(errc::cannot);
    store_flags_result out;
    {
      std::lock_guard lock(acct_->mutex);
      for (auto uid : uids) {
        auto idx = detail::find_uid(view_, uid);
        if (idx == std::size_t(-1)) continue;
        auto it = mb_->messages.find(uid);
        if (it == mb_->messages.end()) continue;  // expunged by another session: nothing to do
        auto& info = it->second.info;
        if (unchanged_since && info.modseq > *unchanged_since) {
          out.modified.push_back(uid);
          continue;
        }
        if (detail::apply_flags(info.flags, op, f)) info.modseq = ++mb_->highest_modseq;
        view_[idx].flags = info.flags;
        view_[idx].modseq = info.modseq;
        out.changed.push_back(idx);
      }
    }
    mb_->notifier.notify();
    co_return out;
  }

  task<result<std::vector<uid_t>>> expunge(std::optional<std::span<uid_t const>> only) override {
    if (read_only_) co_return fail(errc::cannot);
    std::vector<uid_t> gone;
    {
      std::lock_guard lock(acct_->mutex);
      for (auto const& m : view_) {
        if (only && std::find(only->begin(), only->end(), m.uid) == only->end()) continue;
        auto it = mb_->messages.find(m.uid);
        if (it == mb_->messages.end() || !it->second.info.flags.has(system_flag::deleted)) continue;
        mb_->messages.erase(it);
        gone.push_back(m.uid);
      }
      if (!gone.empty()) ++mb_->highest_modseq;
    }
    drop(gone);
    if (!gone.empty()) mb_->notifier.notify();
    co_return gone;
  }

  task<result<copy_result>> copy(std::span<uid_t const> uids, std::string_view dest, bool move) override {
    if (move && read_only_) co_return fail(errc::cannot);
    auto name = normalize_name(dest);
    if (!name) co_return fail(name.error());
    copy_result out;
    std::shared_ptr<mailbox_data> target;
    std::vector<uid_t> moved;
    {
      std::lock_guard lock(acct_->mutex);
      target = acct_->find(*name);
      if (!target) co_return fail(errc::no_such_mailbox);
      std::uint64_t bytes = 0;
      for (auto uid : uids)
        if (auto it = mb_->messages.find(uid); it != mb_->messages.end()) bytes += it->second.info.size;
      auto q = acct_->usage();
      if (!move && q.storage_limit && q.storage_used + bytes > q.storage_limit) co_return fail(errc::over_quota);
      out.uidvalidity = target->uidvalidity;
      for (auto uid : uids) {
        if (detail::find_uid(view_, uid) == std::size_t(-1)) continue;
        auto it = mb_->messages.find(uid);
        if (it == mb_->messages.end()) continue;
        auto m = it->second;
        auto new_uid = insert(*target, m.info, m.body);
        out.uids.emplace_back(uid, new_uid);
        if (move && target != mb_) {
          mb_->messages.erase(it);
          moved.push_back(uid);
        }
      }
      if (!moved.empty()) ++mb_->highest_modseq;
    }
    std::sort(moved.begin(), moved.end());
    drop(moved);
    out.expunged = moved;
    target->notifier.notify();
    if (!moved.empty()) mb_->notifier.notify();
    co_return out;
  }

 private:
  void drop(std::vector<uid_t> const& gone) {
    std::erase_if(view_, [&](message_info const& m) { return std::binary_search(gone.begin(), gone.end(), m.uid); });
  }

  std::shared_ptr<account_data> acct_;
  std::shared_ptr<mailbox_data> mb_;
  bool read_only_;
  std::uint32_t uidvalidity_;
  std::vector<message_info> view_;
  uid_t uidnext_ = 1;
  modseq_t seen_modseq_ = 0;
  std::uint64_t generation_ = 0;
};

class memory_account final : public account {
 public:
  explicit memory_account(std::shared_ptr<account_data> data) : data_(std::move(data)) {}
  std::string const& user() const noexcept override { return data_->user; }

  task<result<std::vector<mailbox_info>>> list() override {
    std::lock_guard lock(data_->mutex);
    std::vector<mailbox_info> out;
    for (auto const& [name, mb] : data_->mailboxes) {
      mailbox_info info{name, mb->use, data_->subscriptions.count(name) > 0, false};
      auto child = data_->mailboxes.lower_bound(name + delimiter);  // not just the next name
      info.has_children = child != data_->mailboxes.end() && is_inferior(child->first, name);
      if (name == "INBOX") out.insert(out.begin(), std::move(info));
      else out.push_back(std::move(info));
    }
    co_return out;
  }

  task<result<void>> create(std::string_view raw, special_use use) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::lock_guard lock(data_->mutex);
    if (data_->find(*name)) co_return fail(errc::mailbox_exists);
    for (auto p = parent_name(*name); !p.empty(); p = parent_name(p))
      if (!data_->find(p)) data_->add_mailbox(std::string(p), special_use::none);
    data_->add_mailbox(*name, use);
    co_return result<void>{};
  }

  task<result<void>> remove(std::string_view raw) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::shared_ptr<mailbox_data> mb;
    {
      std::lock_guard lock(data_->mutex);
      if (*name == "INBOX") co_return fail(errc::cannot);
      auto it = data_->mailboxes.find(*name);
      if (it == data_->mailboxes.end()) co_return fail(errc::no_such_mailbox);
      auto child = data_->mailboxes.lower_bound(*name + delimiter);
      if (child != data_->mailboxes.end() && is_inferior(child->first, *name)) co_return fail(errc::has_children);
      mb = it->second;
      data_->mailboxes.erase(it);
    }
    mb->notifier.notify();
    co_return result<void>{};
  }

  task<result<void>> rename(std::string_view raw_from, std::string_view raw_to) override {
    auto from = normalize_name(raw_from);
    auto to = normalize_name(raw_to);
    if (!from || !to) co_return fail(errc::invalid_name);
    std::vector<std::shared_ptr<mailbox_data>> touched;
    {
      std::lock_guard lock(data_->mutex);
      auto src = data_->find(*from);
      if (!src) co_return fail(errc::no_such_mailbox);
      if (data_->find(*to)) co_return fail(errc::mailbox_exists);
      if (is_inferior(*to, *from)) co_return fail(errc::cannot);
      for (auto p = parent_name(*to); !p.empty(); p = parent_name(p))
        if (!data_->find(p)) data_->add_mailbox(std::string(p), special_use::none);
      if (*from == "INBOX") {  // messages move; INBOX stays, empty
        auto dst = data_->add_mailbox(*to, special_use::none);
        for (auto& [uid, m] : src->messages) insert(*dst, m.info, m.body);
        src->messages.clear();
        ++src->highest_modseq;
        touched.push_back(src);
      } else {
        std::vector<std::string> names;
        for (auto const& [n, _] : data_->mailboxes)
          if (n == *from || is_inferior(n, *from)) names.push_back(n);
        for (auto const& n : names) {
          auto node = data_->mailboxes.extract(n);
          node.key() = *to + n.substr(from->size());
          node.mapped()->name = node.key();
          touched.push_back(node.mapped());
          data_->mailboxes.insert(std::move(node));
        }
      }
    }
    for (auto& mb : touched) mb->notifier.notify();
    co_return result<void>{};
  }

  task<result<void>> subscribe(std::string_view raw, bool on) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::lock_guard lock(data_->mutex);
    if (on) data_->subscriptions.insert(*name);
    else data_->subscriptions.erase(*name);
    co_return result<void>{};
  }

  task<result<std::vector<std::string>>> subscriptions() override {
    std::lock_guard lock(data_->mutex);
    co_return std::vector<std::string>(data_->subscriptions.begin(), data_->subscriptions.end());
  }

  task<result<mailbox_status>> status(std::string_view raw) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::lock_guard lock(data_->mutex);
    auto mb = data_->find(*name);
    if (!mb) co_return fail(errc::no_such_mailbox);
    mailbox_status st;
    st.uidvalidity = mb->uidvalidity;
    st.uidnext = mb->uidnext;
    st.highest_modseq = mb->highest_modseq;
    for (auto const& [_, m] : mb->messages) {
      ++st.messages;
      st.size += m.info.size;
      if (!m.info.flags.has(system_flag::seen)) ++st.unseen;
      if (m.info.flags.has(system_flag::deleted)) ++st.deleted;
      if (m.info.recent) ++st.recent;
    }
    co_return st;
  }

  task<result<std::unique_ptr<mailbox>>> open(std::string_view raw, bool read_only) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::shared_ptr<mailbox_data> mb;
    {
      std::lock_guard lock(data_->mutex);
      mb = data_->find(*name);
    }
    if (!mb) co_return fail(errc::no_such_mailbox);
    auto view = std::make_unique<memory_mailbox>(data_, mb, read_only);
    if (auto s = view->sync_now(); !s) co_return fail(s.error());
    co_return std::unique_ptr<mailbox>(std::move(view));
  }

  task<result<std::unique_ptr<appender>>> append(std::string_view raw, append_options const& opts) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    {
      std::lock_guard lock(data_->mutex);
      if (!data_->find(*name)) co_return fail(errc::no_such_mailbox);
      if (opts.check_quota && data_->usage().would_exceed(0)) co_return fail(errc::over_quota);
    }
    co_return std::make_unique<memory_appender>(data_, *name, opts);
  }

  task<result<quota_usage>> quota() override {
    std::lock_guard lock(data_->mutex);
    co_return data_->usage();
  }

  task<result<std::vector<acl_entry>>> get_acl(std::string_view raw) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::lock_guard lock(data_->mutex);
    auto mb = data_->find(*name);
    if (!mb) co_return fail(errc::no_such_mailbox);
    co_return mb->acl_entries();
  }

  task<result<void>> set_acl(std::string_view raw, std::string_view identifier, std::optional<rights> r) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    if (!valid_acl_identifier(identifier)) co_return fail(errc::cannot);
    std::lock_guard lock(data_->mutex);
    auto mb = data_->find(*name);
    if (!mb) co_return fail(errc::no_such_mailbox);
    if (r && !r->empty()) mb->acl.insert_or_assign(std::string(identifier), *r);
    else if (auto it = mb->acl.find(identifier); it != mb->acl.end()) mb->acl.erase(it);
    co_return result<void>{};
  }

  task<result<rights>> rights_of(std::string_view raw, std::string_view user) override {
    auto name = normalize_name(raw);
    if (!name) co_return fail(name.error());
    std::lock_guard lock(data_->mutex);
    auto mb = data_->find(*name);
    if (!mb) co_return fail(errc::no_such_mailbox);
    co_return effective_rights(mb->acl_entries(), data_->user, user);
  }

 private:
  std::shared_ptr<account_data> data_;
};

}  // namespace

store::store(options opts) : opts_(opts) {}
store::~store() = default;

void store::add_account(std::string_view user) {
  std::lock_guard lock(mutex_);
  if (accounts_.count(user)) return;
  auto data = std::make_shared<account_data>();
  data->user = std::string(user);
  data->opts = opts_;
  data->add_mailbox("INBOX", special_use::none);
  accounts_.emplace(std::string(user), std::move(data));
}

task<result<std::shared_ptr<account>>> store::open_account(std::string_view user) {
  if (opts_.create_accounts) add_account(user);
  std::lock_guard lock(mutex_);
  auto it = accounts_.find(user);
  if (it == accounts_.end()) co_return fail(errc::no_such_account);
  co_return std::shared_ptr<account>(std::make_shared<memory_account>(it->second));
}

task<result<std::vector<shared_mailbox>>> store::shared_with(std::string_view user) {
  std::vector<std::shared_ptr<account_data>> others;  // by owner: accounts_ is sorted
  {
    std::lock_guard lock(mutex_);
    for (auto const& [name, data] : accounts_)
      if (name != user) others.push_back(data);
  }
  std::vector<shared_mailbox> out;
  for (auto const& data : others) {
    std::lock_guard lock(data->mutex);
    for (auto const& [name, mb] : data->mailboxes)  // by name
      if (!mb->acl.empty() && effective_rights(mb->acl_entries(), data->user, user).has('l'))
        out.push_back({data->user, name});
  }
  co_return out;
}

}  // namespace mailroom::store::memory
