#include "shared_index.hpp"

#include <algorithm>
#include <cerrno>

#include <dirent.h>
#include <sys/stat.h>

#include "acl.hpp"
#include "folder.hpp"
#include "mailroom/store/maildir/store.hpp"
#include "names.hpp"

namespace mailroom::store::maildir::detail {
namespace {

constexpr std::string_view index_name = ".mailroom-shared";
constexpr std::string_view header = "mailroom-shared 1";

std::error_code last_error() { return {errno, std::system_category()}; }

bool is_dir(std::string const& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_inferior(std::string_view name, std::string_view of) {
  return name.size() > of.size() && name.substr(0, of.size()) == of && name[of.size()] == delimiter;
}

// One index line, or nullopt for a line that cannot be one (skipped: the index only narrows).
std::optional<shared_index::entry> parse_line(std::string_view line) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  shared_index::entry e{std::string(line.substr(0, sp1)), std::string(line.substr(sp1 + 1, sp2 - sp1 - 1)),
                        std::string(line.substr(sp2 + 1))};
  if (!valid_acl_identifier(e.identifier) || e.identifier.starts_with('-')) return std::nullopt;
  if (!store::valid_account_name(e.owner)) return std::nullopt;  // never a path outside the root
  auto norm = normalize_name(e.mailbox);
  if (!norm || *norm != e.mailbox) return std::nullopt;
  return e;
}

}  // namespace

result<std::string> mailbox_dir(std::string_view root, std::string_view owner, std::string_view name) {
  auto dir = folder_dir(name);
  if (!dir) return fail(dir.error());
  auto maildir = std::string(root) + "/" + std::string(owner) + "/Maildir";
  return dir->empty() ? maildir : maildir + "/" + *dir;
}

shared_index::shared_index(std::string root, log::logger log)
    : root_(std::move(root)), path_(root_ + "/" + std::string(index_name)), log_(std::move(log)) {}

void shared_index::lines_for(std::string_view owner, std::string const& name, std::string const& dir,
                             std::set<entry>& out) const {
  auto acl = read_acl(dir);
  if (!acl) {
    log_.warning("cannot read ACL",
                 {{"path", dir + "/" + std::string(acl_file_name)}, {"error", acl.error().message()}});
    return;
  }
  for (auto& id : lookup_identifiers(*acl)) out.insert({std::move(id), std::string(owner), name});
}

std::set<shared_index::entry> shared_index::scan() const {
  std::set<entry> out;
  DIR* root = ::opendir(root_.c_str());
  if (!root) return out;
  while (auto* de = ::readdir(root)) {
    std::string owner = de->d_name;
    if (!store::valid_account_name(owner)) continue;
    auto maildir = root_ + "/" + owner + "/Maildir";
    if (!is_dir(maildir + "/cur")) continue;
    lines_for(owner, "INBOX", maildir, out);
    DIR* d = ::opendir(maildir.c_str());
    if (!d) continue;
    while (auto* fe = ::readdir(d)) {
      auto name = folder_name(fe->d_name);
      auto dir = maildir + "/" + fe->d_name;
      if (name && *name != "INBOX" && is_dir(dir + "/cur")) lines_for(owner, *name, dir, out);
    }
    ::closedir(d);
  }
  ::closedir(root);
  return out;
}

void shared_index::remember_identity() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    identity_ = {};
    return;
  }
  identity_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
               static_cast<std::uint64_t>(st.st_size),
               std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

result<void> shared_index::load_locked() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail(last_error());
    rebuild_locked();  // missing: never built, or deleted to force a rebuild
    return {};
  }
  identity now{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
               static_cast<std::uint64_t>(st.st_size),
               std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  if (loaded_ && now == identity_) return {};
  auto content = read_small_file(path_);
  if (!content) return fail(content.error());
  std::string_view rest = *content;
  auto nl = rest.find('\n');
  if (rest.substr(0, nl) != header) {
    log_.warning("shared-mailbox index unreadable, rebuilding it", {{"path", path_}});
    rebuild_locked();
    return {};
  }
  rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  std::set<entry> loaded;
  while (!rest.empty()) {
    nl = rest.find('\n');
    if (nl == std::string_view::npos) break;  // torn last line: its change was not acknowledged
    if (auto e = parse_line(rest.substr(0, nl))) loaded.insert(std::move(*e));
    rest.remove_prefix(nl + 1);
  }
  entries_ = std::move(loaded);
  loaded_ = true;
  identity_ = now;
  return {};
}

void shared_index::rebuild_locked() {
  entries_ = scan();
  loaded_ = true;
  // Unsaved, the index still serves from memory; the next lookup scans again.
  if (auto r = save_locked(); !r)
    log_.warning("cannot write the shared-mailbox index", {{"path", path_}, {"error", r.error().message()}});
}

result<void> shared_index::save_locked() {
  std::string content(header);
  content += '\n';
  for (auto const& e : entries_) content += e.identifier + " " + e.owner + " " + e.mailbox + "\n";
  auto ec = replace_file(root_, std::string(index_name), content);
  remember_identity();
  if (ec) return fail(ec);
  return {};
}

result<std::vector<shared_index::entry>> shared_index::candidates_locked(std::string_view user) {
  if (auto r = load_locked(); !r) return fail(r.error());
  std::vector<entry> out;
  for (auto const& e : entries_)
    if (e.owner != user && (e.identifier == user || e.identifier == "anyone" || e.identifier == "authenticated"))
      out.push_back(e);
  return out;
}

result<std::vector<shared_index::entry>> shared_index::subtree_locked(std::string_view owner, std::string_view name) {
  if (auto r = load_locked(); !r) return fail(r.error());
  std::vector<entry> out;
  for (auto const& e : entries_)
    if (e.owner == owner && (e.mailbox == name || is_inferior(e.mailbox, name))) out.push_back(e);
  return out;
}

result<void> shared_index::add_locked(std::vector<entry> const& more) {
  if (auto r = load_locked(); !r) return fail(r.error());
  bool changed = false;
  for (auto const& e : more) changed |= entries_.insert(e).second;
  return changed ? save_locked() : result<void>{};
}

result<void> shared_index::refresh_locked(std::string_view owner, std::vector<std::string> const& names) {
  if (auto r = load_locked(); !r) return fail(r.error());
  auto before = entries_;
  for (auto const& name : names) {
    std::erase_if(entries_, [&](entry const& e) { return e.owner == owner && e.mailbox == name; });
    auto dir = mailbox_dir(root_, owner, name);
    if (dir && is_dir(*dir + "/cur")) lines_for(owner, name, *dir, entries_);
  }
  return entries_ == before ? result<void>{} : save_locked();
}

}  // namespace mailroom::store::maildir::detail
