#include "mailroom/store/maildir/store.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <set>
#include <tuple>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail/acl.hpp"
#include "detail/folder.hpp"
#include "detail/names.hpp"
#include "detail/shared_index.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/store/maildir/writer.hpp"

namespace mailroom::store::maildir {
namespace {

using detail::folder;

std::error_code last_error() { return {errno, std::system_category()}; }

bool is_dir(std::string const& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_inferior(std::string_view name, std::string_view of) {
  return name.size() > of.size() && name.substr(0, of.size()) == of && name[of.size()] == delimiter;
}

special_use default_use(std::string_view name) {
  struct {
    std::string_view name;
    special_use use;
  } constexpr defaults[] = {{"Sent", special_use::sent},         {"Sent Messages", special_use::sent},
                            {"Sent Items", special_use::sent},   {"Drafts", special_use::drafts},
                            {"Trash", special_use::trash},       {"Deleted Messages", special_use::trash},
                            {"Deleted Items", special_use::trash}, {"Junk", special_use::junk},
                            {"Spam", special_use::junk},         {"Archive", special_use::archive},
                            {"Archives", special_use::archive}};
  for (auto const& d : defaults)
    if (text::iequals(d.name, name)) return d.use;
  return special_use::none;
}

// Lines of a small text file (missing file = no lines).
std::vector<std::string> read_lines(std::string const& path) {
  std::vector<std::string> out;
  auto content = detail::read_small_file(path);
  if (!content) return out;
  std::string_view rest = *content;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.empty()) out.emplace_back(line);
  }
  return out;
}

class file_reader final : public message_reader {
 public:
  file_reader(int fd, std::uint64_t size, blocking_pool& pool) : fd_(fd), size_(size), pool_(pool) {}
  ~file_reader() override { ::close(fd_); }
  std::uint64_t size() const noexcept override { return size_; }
  task<result<std::size_t>> read(std::span<char> buf) override {
    int fd = fd_;
    auto offset = static_cast<off_t>(pos_);
    auto job = [fd, buf, offset]() -> result<std::size_t> {
      for (;;) {
        auto n = ::pread(fd, buf.data(), buf.size(), offset);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return fail(last_error());
      }
    };
    auto n = co_await pool_.offload(std::move(job));
    if (n) pos_ += *n;
    co_return n;
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  blocking_pool& pool_;
};

class maildir_account;

class maildir_appender final : public appender {
 public:
  maildir_appender(std::shared_ptr<maildir_account> acct, std::shared_ptr<folder> f,
                   std::unique_ptr<writer> w, append_options opts)
      : acct_(std::move(acct)), folder_(std::move(f)), writer_(std::move(w)), opts_(std::move(opts)) {}
  result<void> write(std::span<char const> data) override { return writer_->write(data); }
  task<result<append_result>> commit() override;
  void abort() noexcept override { writer_->abort(); }

 private:
  std::shared_ptr<maildir_account> acct_;
  std::shared_ptr<folder> folder_;
  std::unique_ptr<writer> writer_;
  append_options opts_;
};

class maildir_account final : public account, public std::enable_shared_from_this<maildir_account> {
 public:
  maildir_account(std::shared_ptr<store> st, std::string user)
      : st_(std::move(st)), user_(std::move(user)), maildir_(st_->maildir_path(user_)) {}

  std::string const& user() const noexcept override { return user_; }
  store& owner() noexcept { return *st_; }
  blocking_pool& pool() noexcept { return st_->pool(); }

  result<std::string> path_for(std::string_view name) const {
    auto norm = normalize_name(name);
    if (!norm) return fail(norm.error());
    auto dir = detail::folder_dir(*norm);
    if (!dir) return fail(dir.error());
    return dir->empty() ? maildir_ : maildir_ + "/" + *dir;
  }

  // The directory of an existing mailbox.
  result<std::string> existing_path(std::string_view name) const {
    auto path = path_for(name);
    if (!path) return fail(path.error());
    if (!is_dir(*path + "/cur")) return fail(errc::no_such_mailbox);
    return path;
  }

  // The folder of an existing mailbox.
  result<std::shared_ptr<folder>> existing(std::string_view name) {
    auto path = path_for(name);
    if (!path) return fail(path.error());
    if (!is_dir(*path + "/cur")) return fail(errc::no_such_mailbox);
    return st_->folder_at(*path);
  }

  // ---- quota (Maildir++ maildirsize; only kept when a limit is set) ----
  bool limited() const noexcept { return st_->options().storage_limit || st_->options().messages_limit; }

  std::string quota_header() const {
    std::string h;
    if (st_->options().storage_limit) h += std::to_string(st_->options().storage_limit) + "S";
    if (st_->options().messages_limit) h += (h.empty() ? "" : ",") + std::to_string(st_->options().messages_limit) + "C";
    return h;
  }

  // Sizes of every message in every folder (a recount, as Maildir++ prescribes).
  std::pair<std::uint64_t, std::uint64_t> count_usage() const {
    std::uint64_t bytes = 0, count = 0;
    std::vector<std::string> dirs{maildir_};
    if (DIR* d = ::opendir(maildir_.c_str())) {
      while (auto* de = ::readdir(d))
        if (detail::folder_name(de->d_name)) dirs.push_back(maildir_ + "/" + de->d_name);
      ::closedir(d);
    }
    for (auto const& dir : dirs)
      for (char const* sub : {"/new", "/cur"}) {
        DIR* d = ::opendir((dir + sub).c_str());
        if (!d) continue;
        while (auto* de = ::readdir(d)) {
          std::string_view name = de->d_name;
          if (name.empty() || name[0] == '.') continue;
          auto size = detail::size_from_name(detail::split_file_name(name).base);
          if (!size) {
            struct stat st {};
            if (::stat((dir + sub + "/" + std::string(name)).c_str(), &st) != 0) continue;
            size = static_cast<std::uint64_t>(st.st_size);
          }
          bytes += *size;
          ++count;
        }
        ::closedir(d);
      }
    return {bytes, count};
  }

  quota_usage usage() {
    quota_usage q{0, st_->options().storage_limit, 0, st_->options().messages_limit};
    if (!limited()) return q;
    std::lock_guard lock(quota_mutex_);
    auto path = maildir_ + "/maildirsize";
    auto content = detail::read_small_file(path);
    bool recount = !content || content->size() > 5120;
    std::int64_t bytes = 0, count = 0;
    if (!recount) {
      std::string_view rest = *content;
      auto nl = rest.find('\n');
      recount = nl == std::string_view::npos || rest.substr(0, nl) != quota_header();
      if (!recount) rest.remove_prefix(nl + 1);
      while (!recount && !rest.empty()) {
        nl = rest.find('\n');
        if (nl == std::string_view::npos) break;
        auto line = rest.substr(0, nl);
        rest.remove_prefix(nl + 1);
        long long b = 0, c = 0;
        if (std::sscanf(std::string(line).c_str(), "%lld %lld", &b, &c) != 2) {
          recount = true;
          break;
        }
        bytes += b;
        count += c;
      }
      if (bytes < 0 || count < 0) recount = true;
    }
    if (recount) {
      auto [b, c] = count_usage();
      bytes = static_cast<std::int64_t>(b);
      count = static_cast<std::int64_t>(c);
      auto body = quota_header() + "\n" + std::to_string(b) + " " + std::to_string(c) + "\n";
      if (auto ec = detail::replace_file(maildir_, "maildirsize", body); ec)
        st_->logger().warning("cannot rewrite maildirsize", {{"user", user_}, {"error", ec.message()}});
    }
    q.storage_used = static_cast<std::uint64_t>(bytes);
    q.messages_used = static_cast<std::uint64_t>(count);
    return q;
  }

  void add_usage(std::int64_t bytes, std::int64_t count) {
    if (!limited() || (bytes == 0 && count == 0)) return;
    std::lock_guard lock(quota_mutex_);
    int fd = ::open((maildir_ + "/maildirsize").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return;  // recounted on the next check
    (void)write_all(fd, std::to_string(bytes) + " " + std::to_string(count) + "\n");
    ::close(fd);
  }

  void forget_usage() {
    std::lock_guard lock(quota_mutex_);
    ::unlink((maildir_ + "/maildirsize").c_str());
  }

  // ---- mailbox metadata ----
  std::map<std::string, special_use> special_uses() const {
    std::map<std::string, special_use> out;
    for (auto const& line : read_lines(maildir_ + "/mailroom-special-use")) {
      auto sp = line.find(' ');
      if (sp == std::string::npos) continue;
      auto use = parse_special_use(line.substr(0, sp));
      if (use) out[line.substr(sp + 1)] = *use;
    }
    return out;
  }

  result<void> set_special_use(std::string const& name, special_use use) {
    std::lock_guard lock(meta_mutex_);
    auto uses = special_uses();
    if (use == special_use::none) uses.erase(name);
    else uses[name] = use;
    std::string content;
    for (auto const& [n, u] : uses) content += std::string(to_imap(u)) + " " + n + "\n";
    if (auto ec = detail::replace_file(maildir_, "mailroom-special-use", content); ec) return fail(ec);
    return {};
  }

  std::vector<std::string> folder_names() const {
    std::vector<std::string> names;
    DIR* d = ::opendir(maildir_.c_str());
    if (!d) return names;
    while (auto* de = ::readdir(d)) {
      auto name = detail::folder_name(de->d_name);
      if (name && *name != "INBOX" && is_dir(maildir_ + "/" + de->d_name + "/cur")) names.push_back(*name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  result<void> create_folder(std::string const& path) {
    if (auto ec = create_directories(path, {"tmp", "new", "cur"}); ec) return fail(ec);
    int fd = ::open((path + "/maildirfolder").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    return {};
  }

  result<void> create_sync(std::string const& raw, special_use use) {
    auto name = normalize_name(raw);
    if (!name) return fail(name.error());
    auto path = path_for(*name);
    if (!path) return fail(path.error());
    if (is_dir(*path + "/cur")) return fail(errc::mailbox_exists);
    for (auto p = parent_name(*name); !p.empty(); p = parent_name(p)) {
      auto pp = path_for(p);
      if (!pp) return fail(pp.error());
      if (!is_dir(*pp + "/cur"))
        if (auto r = create_folder(*pp); !r) return r;
    }
    if (auto r = create_folder(*path); !r) return r;
    if (use != special_use::none && use != default_use(*name)) return set_special_use(*name, use);
    return {};
  }

  // ---- account interface ----
  task<result<std::vector<mailbox_info>>> list() override {
    auto self = shared_from_this();
    auto job = [self]() -> result<std::vector<mailbox_info>> {
      auto names = self->folder_names();
      auto uses = self->special_uses();
      std::set<std::string> subscribed;
      for (auto& l : read_lines(self->maildir_ + "/subscriptions")) subscribed.insert(std::move(l));
      std::vector<mailbox_info> out;
      out.push_back({"INBOX", special_use::none, subscribed.count("INBOX") > 0, false});
      for (std::size_t i = 0; i < names.size(); ++i) {
        mailbox_info m{names[i], default_use(names[i]), subscribed.count(names[i]) > 0, false};
        if (auto it = uses.find(names[i]); it != uses.end()) m.use = it->second;
        // Not just the next name: "Archive-2020" sorts between "Archive" and "Archive/2021".
        auto child = std::lower_bound(names.begin(), names.end(), names[i] + delimiter);
        m.has_children = child != names.end() && is_inferior(*child, names[i]);
        if (names[i].starts_with("INBOX/")) out[0].has_children = true;
        out.push_back(std::move(m));
      }
      return out;
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<void>> create(std::string_view raw, special_use use) override {
    auto self = shared_from_this();
    auto job = [self, name = std::string(raw), use]() { return self->create_sync(name, use); };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<void>> remove(std::string_view raw) override {
    auto self = shared_from_this();
    auto job = [self, raw = std::string(raw)]() -> result<void> {
      auto name = normalize_name(raw);
      if (!name) return fail(name.error());
      if (*name == "INBOX") return fail(errc::cannot);
      auto path = self->path_for(*name);
      if (!path) return fail(path.error());
      if (!is_dir(*path + "/cur")) return fail(errc::no_such_mailbox);
      for (auto const& n : self->folder_names())
        if (is_inferior(n, *name)) return fail(errc::has_children);
      bool const had_acl = self->has_acl_file(*path);
      // Out of sight at once (one rename), then removed.
      static std::atomic<unsigned> counter{0};
      auto trash = self->maildir_ + "/tmp/deleted." + std::to_string(now_seconds()) + "." + std::to_string(::getpid()) +
                   "." + std::to_string(++counter);
      if (::rename(path->c_str(), trash.c_str()) != 0) return fail(last_error());
      if (auto ec = fsync_directory(self->maildir_); ec) return fail(ec);
      std::error_code ec;
      std::filesystem::remove_all(trash, ec);
      self->st_->forget(*path);
      (void)self->set_special_use(*name, special_use::none);
      self->forget_usage();
      if (had_acl) {  // its dovecot-acl went with it; prune the shared index after
        auto& index = self->st_->shared();
        auto lock = index.lock();
        std::vector<std::string> names{*name};
        self->acl_changed(index.refresh_locked(self->user_, names));
      }
      return {};
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<void>> rename(std::string_view raw_from, std::string_view raw_to) override {
    auto self = shared_from_this();
    auto job = [self, raw_from = std::string(raw_from), raw_to = std::string(raw_to)]() -> result<void> {
      auto from = normalize_name(raw_from);
      auto to = normalize_name(raw_to);
      if (!from || !to) return fail(errc::invalid_name);
      auto from_path = self->path_for(*from);
      auto to_path = self->path_for(*to);
      if (!from_path) return fail(from_path.error());
      if (!to_path) return fail(to_path.error());
      if (!is_dir(*from_path + "/cur")) return fail(errc::no_such_mailbox);
      if (is_dir(*to_path + "/cur")) return fail(errc::mailbox_exists);
      if (is_inferior(*to, *from) || *to == "INBOX") return fail(errc::cannot);
      for (auto p = parent_name(*to); !p.empty(); p = parent_name(p)) {
        auto pp = self->path_for(p);
        if (pp && !is_dir(*pp + "/cur"))
          if (auto r = self->create_folder(*pp); !r) return r;
      }
      if (*from == "INBOX") {  // the messages move; INBOX stays, empty
        if (auto r = self->create_folder(*to_path); !r) return r;
        for (char const* sub : {"/new", "/cur"}) {
          DIR* d = ::opendir((*from_path + sub).c_str());
          if (!d) continue;
          while (auto* de = ::readdir(d)) {
            if (de->d_name[0] == '.') continue;
            ::rename((*from_path + sub + "/" + de->d_name).c_str(), (*to_path + sub + "/" + de->d_name).c_str());
          }
          ::closedir(d);
          if (auto ec = fsync_directory(*to_path + sub); ec) return fail(ec);
        }
        return {};
      }
      auto from_dir = from_path->substr(self->maildir_.size() + 1);
      auto to_dir = to_path->substr(self->maildir_.size() + 1);
      std::vector<std::string> moves;
      DIR* d = ::opendir(self->maildir_.c_str());
      if (!d) return fail(last_error());
      while (auto* de = ::readdir(d)) {
        std::string_view n = de->d_name;
        if (n == from_dir || (n.starts_with(from_dir) && n.size() > from_dir.size() && n[from_dir.size()] == '.'))
          moves.emplace_back(n);
      }
      ::closedir(d);
      std::sort(moves.begin(), moves.end());
      // dovecot-acl files move with their folders. The shared index gets lines for the new names
      // before the move and loses those of the old names after it, so it never misses a mailbox
      // someone may look up (an extra line is harmless: shared_with() checks the ACL itself).
      std::vector<std::string> acl_names;  // old and new names of the moved folders with an ACL
      for (auto const& m : moves) {
        auto old_name = detail::folder_name(m);
        if (!old_name || !self->has_acl_file(self->maildir_ + "/" + m)) continue;
        acl_names.push_back(*old_name);
        acl_names.push_back(*to + old_name->substr(from->size()));
      }
      auto& index = self->st_->shared();
      std::unique_lock<std::mutex> index_lock;
      if (!acl_names.empty()) {
        index_lock = index.lock();
        auto lines = index.subtree_locked(self->user_, *from);
        if (!lines) return fail(lines.error());
        for (auto& l : *lines) l.mailbox = *to + l.mailbox.substr(from->size());
        if (auto r = index.add_locked(*lines); !r) return r;
      }
      std::error_code moved;
      for (auto const& m : moves) {
        auto target = to_dir + m.substr(from_dir.size());
        if (::rename((self->maildir_ + "/" + m).c_str(), (self->maildir_ + "/" + target).c_str()) != 0) {
          moved = last_error();
          break;
        }
        self->st_->forget(self->maildir_ + "/" + m);
      }
      if (!moved) moved = fsync_directory(self->maildir_);
      if (!acl_names.empty()) self->acl_changed(index.refresh_locked(self->user_, acl_names));
      if (moved) return fail(moved);
      auto uses = self->special_uses();
      if (auto it = uses.find(*from); it != uses.end()) {
        (void)self->set_special_use(*from, special_use::none);
        (void)self->set_special_use(*to, it->second);
      }
      return {};
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<void>> subscribe(std::string_view raw, bool on) override {
    auto self = shared_from_this();
    auto job = [self, raw = std::string(raw), on]() -> result<void> {
      auto name = normalize_name(raw);
      if (!name) return fail(name.error());
      std::lock_guard lock(self->meta_mutex_);
      auto lines = read_lines(self->maildir_ + "/subscriptions");
      std::set<std::string> subs(lines.begin(), lines.end());
      if (on) subs.insert(*name);
      else subs.erase(*name);
      std::string content;
      for (auto const& s : subs) content += s + "\n";
      if (auto ec = detail::replace_file(self->maildir_, "subscriptions", content); ec) return fail(ec);
      return {};
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<std::vector<std::string>>> subscriptions() override {
    auto self = shared_from_this();
    auto job = [self]() -> result<std::vector<std::string>> {
      std::lock_guard lock(self->meta_mutex_);
      std::set<std::string> subs;
      for (auto& l : read_lines(self->maildir_ + "/subscriptions"))
        if (auto n = normalize_name(l)) subs.insert(std::move(*n));  // lines other programs wrote
      return std::vector<std::string>(subs.begin(), subs.end());
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<mailbox_status>> status(std::string_view name) override {
    auto f = existing(name);
    if (!f) co_return fail(f.error());
    auto job = [f = *f]() { return f->status(); };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<std::unique_ptr<mailbox>>> open(std::string_view name, bool read_only) override;

  task<result<std::unique_ptr<appender>>> append(std::string_view name, append_options const& opts) override {
    auto f = existing(name);
    if (!f) co_return fail(f.error());
    if (opts.check_quota && limited()) {
      auto self = shared_from_this();
      auto job = [self]() { return self->usage(); };
      auto q = co_await pool().offload(std::move(job));
      if (q.would_exceed(0)) co_return fail(errc::over_quota);
    }
    auto w = writer::create((*f)->dir());
    if (!w) co_return fail(w.error());
    co_return std::make_unique<maildir_appender>(shared_from_this(), *f, std::move(*w), opts);
  }

  task<result<quota_usage>> quota() override {
    if (!limited()) co_return quota_usage{};  // nothing to count, nothing to wait for
    auto self = shared_from_this();
    auto job = [self]() { return self->usage(); };
    co_return co_await pool().offload(std::move(job));
  }

  // ---- access control ----
  bool has_acl_file(std::string const& dir) const {
    return ::access((dir + "/" + std::string(detail::acl_file_name)).c_str(), F_OK) == 0;
  }

  result<std::vector<acl_entry>> read_acl(std::string const& dir) const {
    auto acl = detail::read_acl(dir);
    if (!acl)
      st_->logger().warning("cannot read ACL", {{"user", user_},
                                                {"path", dir + "/" + std::string(detail::acl_file_name)},
                                                {"error", acl.error().message()}});
    return acl;
  }

  // After an ACL changed (or moved, or went): logs a failed index update (the index stays a
  // superset, so nothing is granted wrongly) and drops Dovecot's dovecot-acl-list so Dovecot
  // rebuilds it.
  void acl_changed(result<void> const& index_update) {
    if (!index_update)
      st_->logger().warning("cannot update the shared-mailbox index",
                            {{"user", user_}, {"error", index_update.error().message()}});
    ::unlink((maildir_ + "/dovecot-acl-list").c_str());
  }

  task<result<std::vector<acl_entry>>> get_acl(std::string_view raw) override {
    auto self = shared_from_this();
    auto job = [self, raw = std::string(raw)]() -> result<std::vector<acl_entry>> {
      auto path = self->existing_path(raw);
      if (!path) return fail(path.error());
      return self->read_acl(*path);
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<void>> set_acl(std::string_view raw, std::string_view identifier, std::optional<rights> r) override {
    auto self = shared_from_this();
    if (r && r->empty()) r.reset();
    auto job = [self, raw = std::string(raw), id = std::string(identifier), r]() -> result<void> {
      auto name = normalize_name(raw);
      if (!name) return fail(name.error());
      auto path = self->existing_path(*name);
      if (!path) return fail(path.error());
      if (!valid_acl_identifier(id)) return fail(errc::cannot);
      auto& index = self->st_->shared();
      auto lock = index.lock();
      if (r && r->has('l') && !id.starts_with('-')) {  // in the index before anyone can rely on it
        std::vector<detail::shared_index::entry> line{{id, self->user_, *name}};
        if (auto added = index.add_locked(line); !added) return added;
      }
      auto written = detail::write_acl_entry(*path, id, r);
      std::vector<std::string> names{*name};
      self->acl_changed(index.refresh_locked(self->user_, names));
      return written;
    };
    co_return co_await pool().offload(std::move(job));
  }

  task<result<rights>> rights_of(std::string_view raw, std::string_view user) override {
    auto self = shared_from_this();
    auto job = [self, raw = std::string(raw), user = std::string(user)]() -> result<rights> {
      auto path = self->existing_path(raw);
      if (!path) return fail(path.error());
      if (user == self->user_) return rights::full();  // whatever the file says
      auto acl = self->read_acl(*path);
      if (!acl) return fail(acl.error());
      return effective_rights(*acl, self->user_, user);
    };
    co_return co_await pool().offload(std::move(job));
  }

  std::string const& maildir() const noexcept { return maildir_; }

 private:
  std::shared_ptr<store> st_;
  std::string user_;
  std::string maildir_;
  std::mutex quota_mutex_;
  std::mutex meta_mutex_;
};

task<result<append_result>> maildir_appender::commit() {
  auto size = writer_->size();
  auto& pool = acct_->pool();
  if (opts_.check_quota && acct_->limited()) {
    auto acct = acct_;
    auto job = [acct]() { return acct->usage(); };
    auto q = co_await pool.offload(std::move(job));
    if (q.would_exceed(size)) {
      writer_->abort();
      co_return fail(errc::over_quota);
    }
  }
  writer::commit_options copts;
  copts.to_cur = opts_.assign_uid || opts_.flags.system || !opts_.flags.keywords.empty();
  copts.mtime = opts_.internal_date;
  if (copts.to_cur) {
    auto f = folder_;
    auto fl = opts_.flags;
    auto job = [f, fl]() { return f->info_for(fl); };
    auto info = co_await pool.offload(std::move(job));
    if (!info) {
      writer_->abort();
      co_return fail(info.error());
    }
    copts.info = *info;
  }
  auto file = co_await writer_->commit(copts);
  if (!file) co_return fail(file.error());
  acct_->add_usage(static_cast<std::int64_t>(size), 1);
  if (!opts_.assign_uid) {
    acct_->owner().notify(folder_->path());
    co_return append_result{};
  }
  std::vector<folder::adopted_file> files{{*file, !copts.to_cur, size, opts_.internal_date.value_or(now_seconds())}};
  auto f = folder_;
  auto job = [f, files]() { return f->adopt(files); };
  auto uids = co_await pool.offload(std::move(job));
  if (!uids) co_return fail(uids.error());
  auto job2 = [f]() { return f->uidvalidity(); };
  auto uidvalidity = co_await pool.offload(std::move(job2));
  co_return append_result{uidvalidity, uids->front()};
}

class maildir_mailbox final : public mailbox {
 public:
  maildir_mailbox(std::shared_ptr<maildir_account> acct, std::shared_ptr<folder> f, std::string name, bool ro)
      : acct_(std::move(acct)), folder_(std::move(f)), name_(std::move(name)), read_only_(ro) {}

  std::string const& name() const noexcept override { return name_; }
  bool read_only() const noexcept override { return read_only_; }
  std::uint32_t uidvalidity() const noexcept override { return uidvalidity_; }
  std::vector<message_info> const& messages() const noexcept override { return view_; }
  uid_t uidnext() const noexcept override { return uidnext_; }
  modseq_t highest_modseq() const noexcept override { return seen_modseq_; }

  task<result<sync_changes>> sync() override {
    auto f = folder_;
    bool claim = !read_only_;
    auto job = [f, claim]() { return f->sync(claim); };
    auto snap = co_await acct_->pool().offload(std::move(job));
    if (!snap) {
      if (snap.error() != errc::no_such_mailbox) co_return fail(snap.error());
      sync_changes gone;  // deleted or renamed away: the view is over
      gone.uidvalidity_changed = true;
      for (auto const& m : view_) gone.expunged.push_back(m.uid);
      view_.clear();
      co_return gone;
    }
    bool reset = uidvalidity_ != 0 && snap->uidvalidity != uidvalidity_;
    modseq_t seen = reset ? 0 : seen_modseq_;
    if (reset) view_.clear();
    uidvalidity_ = snap->uidvalidity;
    uidnext_ = snap->uidnext;
    seen_modseq_ = snap->highest_modseq;
    generation_ = snap->generation;
    auto changes = mailroom::store::detail::replace_view(view_, std::move(snap->messages), seen);
    for (auto uid : snap->claimed)
      if (auto idx = mailroom::store::detail::find_uid(view_, uid); idx != std::size_t(-1)) view_[idx].recent = true;
    changes.uidvalidity_changed = reset;
    co_return changes;
  }

  task<void> wait_for_change(std::chrono::steady_clock::duration max) override {
    auto cap = std::min(max, acct_->owner().options().poll_interval);
    co_await folder_->notifier().wait(generation_, cap);
  }

  task<result<std::unique_ptr<message_reader>>> open(uid_t uid) override {
    if (mailroom::store::detail::find_uid(view_, uid) == std::size_t(-1)) co_return fail(errc::no_such_message);
    auto f = folder_;
    auto job = [f, uid]() -> result<std::pair<int, std::uint64_t>> {
      auto path = f->file_path(uid);
      if (!path) return fail(path.error());
      int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) {  // renamed between lookup and open: look once more
        path = f->file_path(uid);
        if (!path) return fail(path.error());
        fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
      }
      if (fd < 0) return fail(errno == ENOENT ? std::error_code(errc::no_such_message) : last_error());
      struct stat st {};
      ::fstat(fd, &st);
      return std::pair{fd, static_cast<std::uint64_t>(st.st_size)};
    };
    auto opened = co_await acct_->pool().offload(std::move(job));
    if (!opened) co_return fail(opened.error());
    co_return std::make_unique<file_reader>(opened->first, opened->second, acct_->pool());
  }

  task<result<store_flags_result>> store(std::span<uid_t const> uids, flag_op op, flag_set const& fl,
                                         std::optional<modseq_t> unchanged_since) override {
    if (read_only_) co_return fail(errc::cannot);
    auto f = folder_;
    auto* view = &view_;
    auto job = [f, view, uids, op, &fl, unchanged_since]() { return f->set_flags(*view, uids, op, fl, unchanged_since); };
    // seen_modseq_ stays: raising it would hide changes other sessions made meanwhile; the next
    // sync reports our own change once more, which IMAP allows.
    co_return co_await acct_->pool().offload(std::move(job));
  }

  task<result<std::vector<uid_t>>> expunge(std::optional<std::span<uid_t const>> only) override {
    if (read_only_) co_return fail(errc::cannot);
    std::vector<uid_t> uids;
    if (only) uids.assign(only->begin(), only->end());
    else
      for (auto const& m : view_) uids.push_back(m.uid);
    std::erase_if(uids, [&](uid_t u) { return mailroom::store::detail::find_uid(view_, u) == std::size_t(-1); });
    auto f = folder_;
    auto job = [f, uids]() { return f->remove(uids, true); };
    auto gone = co_await acct_->pool().offload(std::move(job));
    if (!gone) co_return fail(gone.error());
    drop(gone->uids);
    acct_->add_usage(-static_cast<std::int64_t>(gone->bytes), -static_cast<std::int64_t>(gone->uids.size()));
    co_return std::move(gone->uids);
  }

  task<result<copy_result>> copy(std::span<uid_t const> uids, std::string_view dest, bool move) override {
    if (move && read_only_) co_return fail(errc::cannot);
    auto target = acct_->existing(dest);
    if (!target) co_return fail(target.error());
    std::vector<uid_t> wanted;
    for (auto u : uids)
      if (mailroom::store::detail::find_uid(view_, u) != std::size_t(-1)) wanted.push_back(u);
    auto src = folder_;
    auto dst = *target;
    auto acct = acct_;
    struct outcome {
      copy_result result;
      std::uint64_t bytes = 0;
    };
    auto job = [src, dst, acct, wanted, move]() -> result<outcome> {
      auto entries = src->entries_for(wanted);
      outcome out;
      std::uint64_t bytes = 0;
      for (auto const& [_, e] : entries) bytes += e.size;
      if (!move && acct->limited()) {
        auto q = acct->usage();
        if (q.storage_limit && q.storage_used + bytes > q.storage_limit) return fail(errc::over_quota);
        if (q.messages_limit && q.messages_used + entries.size() > q.messages_limit) return fail(errc::over_quota);
      }
      std::vector<folder::adopted_file> files;
      std::vector<uid_t> sources;
      auto root = dst->path();
      for (auto const& [uid, e] : entries) {
        auto info = dst->info_for(e.flags);
        if (!info) return fail(info.error());
        auto unique = dst->dir()->unique_name() + ",S=" + std::to_string(e.size);
        auto tmp = root + "/tmp/" + unique;
        auto from = src->path() + "/" + e.relative_path();
        if (::link(from.c_str(), tmp.c_str()) != 0) {
          if (errno == ENOENT) continue;  // expunged meanwhile
          // Another file system or no hard links: copy the bytes.
          int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
          if (in < 0) continue;
          int outfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
          if (outfd < 0) {
            ::close(in);
            return fail(last_error());
          }
          char buf[65536];
          std::error_code ec;
          for (;;) {
            auto n = ::read(in, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) ec = last_error();
            if (n <= 0) break;
            if ((ec = write_all(outfd, std::string_view(buf, static_cast<std::size_t>(n))))) break;
          }
          struct timespec times[2] = {{e.date, 0}, {e.date, 0}};
          if (!ec) ::futimens(outfd, times);
          if (!ec && ::fdatasync(outfd) != 0) ec = last_error();
          ::close(in);
          ::close(outfd);
          if (ec) {
            ::unlink(tmp.c_str());
            return fail(ec);
          }
        }
        auto file = unique + ":2," + *info;
        if (::rename(tmp.c_str(), (root + "/cur/" + file).c_str()) != 0) {
          auto ec = last_error();
          ::unlink(tmp.c_str());
          return fail(ec);
        }
        files.push_back({file, false, e.size, e.date});
        sources.push_back(uid);
        out.bytes += e.size;
      }
      if (files.empty()) {
        out.result.uidvalidity = dst->uidvalidity();
        return out;
      }
      if (auto ec = fsync_directory(root + "/cur"); ec) return fail(ec);
      auto new_uids = dst->adopt(files);
      if (!new_uids) return fail(new_uids.error());
      out.result.uidvalidity = dst->uidvalidity();
      for (std::size_t i = 0; i < sources.size(); ++i) out.result.uids.emplace_back(sources[i], (*new_uids)[i]);
      return out;
    };
    auto done = co_await acct_->pool().offload(std::move(job));
    if (!done) co_return fail(done.error());
    if (!move) {
      acct_->add_usage(static_cast<std::int64_t>(done->bytes), static_cast<std::int64_t>(done->result.uids.size()));
      co_return std::move(done->result);
    }
    std::vector<uid_t> moved;
    for (auto const& [s, _] : done->result.uids) moved.push_back(s);
    auto job2 = [src, moved]() { return src->remove(moved, false); };
    auto gone = co_await acct_->pool().offload(std::move(job2));
    // The copies exist now: a source that could not be removed stays (and is reported as such).
    if (gone) {
      drop(gone->uids);
      done->result.expunged = std::move(gone->uids);
    }
    co_return std::move(done->result);
  }

 private:
  void drop(std::vector<uid_t> const& gone) {
    std::erase_if(view_, [&](message_info const& m) { return std::binary_search(gone.begin(), gone.end(), m.uid); });
  }

  std::shared_ptr<maildir_account> acct_;
  std::shared_ptr<folder> folder_;
  std::string name_;
  bool read_only_;
  std::uint32_t uidvalidity_ = 0;
  std::vector<message_info> view_;
  uid_t uidnext_ = 1;
  modseq_t seen_modseq_ = 0;
  std::uint64_t generation_ = 0;
};

task<result<std::unique_ptr<mailbox>>> maildir_account::open(std::string_view raw, bool read_only) {
  auto name = normalize_name(raw);
  if (!name) co_return fail(name.error());
  auto f = existing(*name);
  if (!f) co_return fail(f.error());
  auto view = std::make_unique<maildir_mailbox>(shared_from_this(), *f, *name, read_only);
  auto first = co_await view->sync();
  if (!first) co_return fail(first.error());
  if (first->uidvalidity_changed && view->messages().empty() && view->uidvalidity() == 0)
    co_return fail(errc::no_such_mailbox);
  co_return std::unique_ptr<mailbox>(std::move(view));
}

}  // namespace

std::shared_ptr<store> store::create(store_options opts, blocking_pool& pool, log::logger logger) {
  return std::make_shared<store>(std::move(opts), pool, std::move(logger));
}

store::store(store_options opts, blocking_pool& pool, log::logger logger)
    : opts_(std::move(opts)), pool_(pool), log_(logger.with_component("store")) {
  while (opts_.root.size() > 1 && opts_.root.back() == '/') opts_.root.pop_back();
  shared_ = std::make_shared<detail::shared_index>(opts_.root, log_);
}

bool store::valid_account_name(std::string_view user) noexcept {
  if (user.empty() || user.size() > 255 || user.front() == '.') return false;
  for (unsigned char c : user)
    if (c <= ' ' || c == '/' || c == '\\' || c == 0x7f) return false;
  return text::is_valid_utf8(user);
}

std::string store::maildir_path(std::string_view user) const { return opts_.root + "/" + std::string(user) + "/Maildir"; }

std::shared_ptr<detail::folder> store::folder_at(std::string const& path) {
  std::lock_guard lock(mutex_);
  auto& slot = folders_[path];
  if (auto f = slot.lock()) return f;
  auto f = std::make_shared<detail::folder>(path, std::make_shared<directory>(path, pool_), log_);
  slot = f;
  if (folders_.size() > 64)  // drop expired slots now and then
    std::erase_if(folders_, [](auto const& kv) { return kv.second.expired(); });
  return f;
}

void store::notify(std::string const& path) {
  std::shared_ptr<detail::folder> f;
  {
    std::lock_guard lock(mutex_);
    auto it = folders_.find(path);
    if (it != folders_.end()) f = it->second.lock();
  }
  if (f) f->notifier().notify();
}

void store::forget(std::string const& path) {
  std::shared_ptr<detail::folder> f;
  {
    std::lock_guard lock(mutex_);
    auto it = folders_.find(path);
    if (it == folders_.end()) return;
    f = it->second.lock();
    folders_.erase(it);
  }
  if (f) f->notifier().notify();
}

task<result<std::shared_ptr<account>>> store::open_account(std::string_view user) {
  if (!valid_account_name(user)) co_return fail(errc::no_such_account);
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (auto it = accounts_.find(user); it != accounts_.end() && now - it->second.checked < account_cache_ttl)
      co_return it->second.acct;
  }
  auto self = shared_from_this();
  auto job = [self, user = std::string(user)]() -> result<std::shared_ptr<account>> {
    auto home = self->opts_.root + "/" + user;
    auto maildir = self->maildir_path(user);
    if (!is_dir(maildir + "/cur")) {
      if (!self->opts_.create_accounts && !is_dir(home)) return fail(errc::no_such_account);
      if (auto ec = create_directories(maildir, {"tmp", "new", "cur"}); ec) return fail(ec);
    }
    auto acct = std::make_shared<maildir_account>(self, user);
    for (auto const& [name, use] : self->opts_.auto_create) {
      auto path = acct->path_for(name);
      if (!path || is_dir(*path + "/cur")) continue;
      if (auto r = acct->create_sync(name, use); !r && r.error() != errc::mailbox_exists)
        self->log_.warning("cannot create mailbox", {{"user", user}, {"mailbox", name}, {"error", r.error().message()}});
    }
    return std::shared_ptr<account>(acct);
  };
  auto acct = co_await pool_.offload(std::move(job));
  if (acct) {
    std::lock_guard lock(mutex_);
    if (accounts_.size() > 10000) accounts_.clear();
    accounts_[std::string(user)] = {*acct, now};
  }
  co_return acct;
}

task<result<std::vector<shared_mailbox>>> store::shared_with(std::string_view user) {
  auto self = shared_from_this();
  auto job = [self, user = std::string(user)]() -> result<std::vector<shared_mailbox>> {
    std::vector<detail::shared_index::entry> candidates;
    {
      auto lock = self->shared_->lock();
      auto found = self->shared_->candidates_locked(user);
      if (!found) return fail(found.error());
      candidates = std::move(*found);
    }
    // The index may be stale: only the mailbox's ACL as it is now grants anything.
    std::set<std::pair<std::string, std::string>> checked;
    std::vector<shared_mailbox> out;
    for (auto const& c : candidates) {
      if (!checked.emplace(c.owner, c.mailbox).second) continue;
      auto dir = detail::mailbox_dir(self->opts_.root, c.owner, c.mailbox);
      if (!dir || !is_dir(*dir + "/cur")) continue;
      auto acl = detail::read_acl(*dir);
      if (!acl) {
        self->log_.warning("cannot read ACL",
                           {{"user", c.owner}, {"mailbox", c.mailbox}, {"error", acl.error().message()}});
        continue;
      }
      if (effective_rights(*acl, c.owner, user).has('l')) out.push_back({c.owner, c.mailbox});
    }
    std::sort(out.begin(), out.end(), [](auto const& a, auto const& b) {
      return std::tie(a.owner, a.name) < std::tie(b.owner, b.name);
    });
    return out;
  };
  co_return co_await pool_.offload(std::move(job));
}

}  // namespace mailroom::store::maildir
