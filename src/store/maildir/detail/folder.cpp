#include "folder.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailroom/core/durable.hpp"
#include "mailroom/core/text.hpp"
#include "names.hpp"

namespace mailroom::store::maildir::detail {
namespace {

constexpr char list_name[] = "mailroom-uidlist";
constexpr char keywords_name[] = "dovecot-keywords";

std::error_code last_error() { return {errno, std::system_category()}; }

std::int64_t ns(struct timespec const& t) { return std::int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; }

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

result<std::string> read_small_file(std::string const& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(last_error());
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto ec = last_error();
      ::close(fd);
      return fail(ec);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Writes a file durably under a temporary name and renames it into place; the directory entry
// is fsynced too.
std::error_code replace_file(std::string const& dir, std::string const& name, std::string const& content) {
  auto tmp = dir + "/" + name + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return last_error();
  auto ec = write_all(fd, content);
  if (!ec && ::fdatasync(fd) != 0) ec = last_error();
  ::close(fd);
  if (!ec && ::rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) ec = last_error();
  if (ec) {
    ::unlink(tmp.c_str());
    return ec;
  }
  return fsync_directory(dir);
}

namespace {

std::vector<std::string_view> split_fields(std::string_view line, std::size_t max) {
  std::vector<std::string_view> out;
  while (!line.empty() && out.size() + 1 < max) {
    auto sp = line.find(' ');
    if (sp == std::string_view::npos) break;
    out.push_back(line.substr(0, sp));
    line.remove_prefix(sp + 1);
  }
  out.push_back(line);
  return out;
}

}  // namespace

std::uint32_t new_uidvalidity() {
  static std::atomic<std::uint32_t> last{0};
  auto now = static_cast<std::uint32_t>(std::time(nullptr));
  auto prev = last.load();
  std::uint32_t next;
  do {
    next = std::max(now, prev + 1);
  } while (!last.compare_exchange_weak(prev, next));
  return next;
}

folder::folder(std::string path, std::shared_ptr<directory> dir, log::logger const& log)
    : path_(std::move(path)), dir_(std::move(dir)), log_(log) {}

std::string folder::record(uid_t uid, entry const& e) const {
  return std::to_string(uid) + ' ' + std::to_string(e.modseq) + ' ' + std::to_string(e.date) + ' ' +
         std::to_string(e.size) + ' ' + e.file() + '\n';
}

void folder::load_keywords_locked() {
  struct stat st {};
  auto path = path_ + "/" + keywords_name;
  std::int64_t mtime = ::stat(path.c_str(), &st) == 0 ? ns(st.st_mtim) : -1;
  if (mtime == keywords_mtime_) return;
  keywords_mtime_ = mtime;
  std::vector<std::string> kw;
  if (auto content = read_small_file(path)) {
    std::string_view rest = *content;
    while (!rest.empty()) {
      auto nl = rest.find('\n');
      auto line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      auto sp = line.find(' ');
      if (sp == std::string_view::npos) continue;
      auto idx = text::parse_uint(line.substr(0, sp), 25);
      auto name = line.substr(sp + 1);
      if (!idx || !valid_keyword(name)) continue;
      if (kw.size() <= *idx) kw.resize(*idx + 1);
      kw[*idx] = std::string(name);
    }
  }
  if (kw == keywords_) return;
  keywords_ = std::move(kw);
  for (auto& [_, e] : entries_) {  // letters may mean something else now
    e.other.clear();
    e.flags = flags_from_info(e.info, keywords_, &e.other);
  }
}

result<void> folder::save_keywords_locked() {
  std::string content;
  for (std::size_t i = 0; i < keywords_.size(); ++i)
    if (!keywords_[i].empty()) content += std::to_string(i) + ' ' + keywords_[i] + '\n';
  if (auto ec = replace_file(path_, keywords_name, content); ec) return fail(ec);
  struct stat st {};
  if (::stat((path_ + "/" + keywords_name).c_str(), &st) == 0) keywords_mtime_ = ns(st.st_mtim);
  return {};
}

result<void> folder::rewrite_log_locked() {
  std::string content = std::string(list_name) + " 1 V" + std::to_string(uidvalidity_) + " N" +
                        std::to_string(uidnext_) + " M" + std::to_string(highest_) + "\n";
  for (auto const& [uid, e] : entries_) content += record(uid, e);
  if (auto ec = replace_file(path_, list_name, content); ec) return fail(ec);
  log_records_ = entries_.size() + 1;
  return {};
}

result<void> folder::append_log_locked(std::string const& records) {
  if (records.empty()) return {};
  auto path = path_ + "/" + list_name;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return fail(last_error());
  auto ec = write_all(fd, records);
  if (!ec && ::fdatasync(fd) != 0) ec = last_error();
  ::close(fd);
  if (ec) return fail(ec);
  log_records_ += static_cast<std::size_t>(std::count(records.begin(), records.end(), '\n'));
  if (log_records_ > 2 * entries_.size() + 64) return rewrite_log_locked();
  return {};
}

result<void> folder::load_locked() {
  entries_.clear();
  by_base_.clear();
  uidnext_ = 1;
  highest_ = 1;
  load_keywords_locked();
  auto content = read_small_file(path_ + "/" + list_name);
  bool lost = !content;
  if (!content && content.error() != std::errc::no_such_file_or_directory) {
    log_.warning("uidlist unreadable, UIDs start over", {{"folder", path_}, {"error", content.error().message()}});
  }
  if (content) {
    std::string_view rest = *content;
    auto nl = rest.find('\n');
    auto header = split_fields(rest.substr(0, nl), 8);
    bool ok = nl != std::string_view::npos && header.size() == 5 && header[0] == list_name && header[1] == "1";
    std::optional<std::uint64_t> v, n, m;
    if (ok) {
      v = header[2].starts_with('V') ? text::parse_uint(header[2].substr(1), UINT32_MAX) : std::nullopt;
      n = header[3].starts_with('N') ? text::parse_uint(header[3].substr(1), UINT32_MAX) : std::nullopt;
      m = header[4].starts_with('M') ? text::parse_uint(header[4].substr(1)) : std::nullopt;
      ok = v && n && m && *v != 0 && *n != 0;
    }
    if (!ok) {
      log_.error("uidlist header is corrupt: kept as .corrupt, UIDVALIDITY changes", {{"folder", path_}});
      ::rename((path_ + "/" + list_name).c_str(), (path_ + "/" + list_name + ".corrupt").c_str());
      lost = true;
    } else {
      uidvalidity_ = static_cast<std::uint32_t>(*v);
      uidnext_ = static_cast<uid_t>(*n);
      highest_ = *m;
      rest.remove_prefix(nl + 1);
      std::size_t bad = 0;
      log_records_ = 1;
      bool torn = false;
      while (!rest.empty()) {
        nl = rest.find('\n');
        if (nl == std::string_view::npos) {  // torn last line: never acknowledged; cut it off below
          torn = true;
          break;
        }
        auto line = rest.substr(0, nl);
        rest.remove_prefix(nl + 1);
        ++log_records_;
        if (line.starts_with('-')) {
          auto f = split_fields(line.substr(1), 2);
          auto uid = text::parse_uint(f[0], UINT32_MAX);
          auto mod = f.size() == 2 ? text::parse_uint(f[1]) : std::nullopt;
          if (!uid || !mod) {
            ++bad;
            continue;
          }
          if (auto it = entries_.find(static_cast<uid_t>(*uid)); it != entries_.end()) entries_.erase(it);
          uidnext_ = std::max<uid_t>(uidnext_, static_cast<uid_t>(*uid + 1));
          highest_ = std::max(highest_, *mod);
          continue;
        }
        auto f = split_fields(line, 5);
        if (f.size() != 5) {
          ++bad;
          continue;
        }
        auto uid = text::parse_uint(f[0], UINT32_MAX - 1);
        auto mod = text::parse_uint(f[1]);
        auto date = text::parse_uint(f[2]);
        auto size = text::parse_uint(f[3]);
        if (!uid || *uid == 0 || !mod || !date || !size || f[4].empty()) {
          ++bad;
          continue;
        }
        entry e;
        auto fn = split_file_name(f[4]);
        e.base = std::string(fn.base);
        e.info = std::string(fn.info);
        e.has_info = fn.has_info;
        e.modseq = *mod;
        e.date = static_cast<std::int64_t>(*date);
        e.size = *size;
        e.flags = flags_from_info(e.info, keywords_, &e.other);
        entries_[static_cast<uid_t>(*uid)] = std::move(e);
        uidnext_ = std::max<uid_t>(uidnext_, static_cast<uid_t>(*uid + 1));
        highest_ = std::max(highest_, *mod);
      }
      if (bad) log_.warning("uidlist has unreadable records, skipped", {{"folder", path_}, {"count", std::to_string(bad)}});
      // Later appends must not be glued to a torn record: write the list out whole.
      if (torn || bad)
        if (auto r = rewrite_log_locked(); !r) return r;
    }
  }
  if (lost) {
    entries_.clear();
    uidvalidity_ = new_uidvalidity();
    uidnext_ = 1;
    highest_ = 1;
    if (auto r = rewrite_log_locked(); !r) return r;
  }
  for (auto const& [uid, e] : entries_) by_base_[e.base] = uid;
  loaded_ = true;
  if (auto r = scan_locked(true); !r) {
    loaded_ = false;
    return fail(r.error());
  }
  return {};
}

result<bool> folder::scan_locked(bool force) {
  struct stat sn {}, sc {};
  if (::stat((path_ + "/new").c_str(), &sn) != 0 || ::stat((path_ + "/cur").c_str(), &sc) != 0) {
    if (errno == ENOENT) return fail(errc::no_such_mailbox);
    return fail(last_error());
  }
  load_keywords_locked();
  auto mt_new = ns(sn.st_mtim), mt_cur = ns(sc.st_mtim);
  // A directory changed within the last second may change again without a new mtime.
  if (!force && mt_new == new_mtime_ && mt_cur == cur_mtime_ && scanned_at_ > std::max(mt_new, mt_cur) + 1000000000)
    return false;
  auto started = now_ns();

  struct found_file {
    std::string file;
    bool in_new;
  };
  std::unordered_map<std::string, found_file> found;
  for (bool in_new : {true, false}) {
    DIR* d = ::opendir((path_ + (in_new ? "/new" : "/cur")).c_str());
    if (!d) return fail(last_error());
    while (auto* de = ::readdir(d)) {
      std::string_view name = de->d_name;
      if (name.empty() || name[0] == '.' || name.find_first_of("\r\n/") != std::string_view::npos) continue;
      auto fn = split_file_name(name);
      auto [it, inserted] = found.try_emplace(std::string(fn.base), found_file{std::string(name), in_new});
      if (!inserted && !in_new) it->second = {std::string(name), in_new};  // mid-rename: cur/ wins
    }
    ::closedir(d);
  }

  std::string records;
  bool changed = false;
  bool expunged = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto& e = it->second;
    auto f = found.find(e.base);
    if (f == found.end()) {
      if (!expunged) ++highest_;
      expunged = true;
      records += '-' + std::to_string(it->first) + ' ' + std::to_string(highest_) + '\n';
      by_base_.erase(e.base);
      it = entries_.erase(it);
      changed = true;
      continue;
    }
    auto fn = split_file_name(f->second.file);
    e.in_new = f->second.in_new;
    if (fn.has_info != e.has_info || fn.info != e.info) {
      e.info = std::string(fn.info);
      e.has_info = fn.has_info;
      e.other.clear();
      auto nf = flags_from_info(e.info, keywords_, &e.other);
      if (!(nf == e.flags)) {
        e.flags = std::move(nf);
        e.modseq = ++highest_;
        changed = true;
      }
      records += record(it->first, e);
    }
    found.erase(f);
    ++it;
  }

  std::vector<std::pair<std::string, found_file>> fresh(found.begin(), found.end());
  std::sort(fresh.begin(), fresh.end(), [](auto const& a, auto const& b) { return a.first < b.first; });
  for (auto& [base, ff] : fresh) {
    struct stat st {};
    if (::stat((path_ + (ff.in_new ? "/new/" : "/cur/") + ff.file).c_str(), &st) != 0) continue;  // gone again
    auto size = size_from_name(base).value_or(static_cast<std::uint64_t>(st.st_size));
    if (auto uid = add_entry_locked(ff.file, ff.in_new, size, st.st_mtim.tv_sec, records); !uid) return fail(uid.error());
    changed = true;
  }
  if (auto r = append_log_locked(records); !r) {
    loaded_ = false;  // what is in memory was not made durable: start over from disk next time
    return fail(r.error());
  }
  new_mtime_ = mt_new;
  cur_mtime_ = mt_cur;
  scanned_at_ = started;
  if (changed) notifier_.notify();
  return changed;
}

result<void> folder::current_locked() {
  if (!loaded_) return load_locked();
  if (auto r = scan_locked(false); !r) return fail(r.error());
  return {};
}

result<uid_t> folder::add_entry_locked(std::string_view file, bool in_new, std::uint64_t size, std::int64_t date,
                                       std::string& records) {
  if (uidnext_ == UINT32_MAX) {  // no UID left: never wrap around
    loaded_ = false;
    return fail(errc::corrupt);
  }
  entry e;
  auto fn = split_file_name(file);
  e.base = std::string(fn.base);
  e.info = std::string(fn.info);
  e.has_info = fn.has_info;
  e.in_new = in_new;
  e.size = size;
  e.date = date;
  e.flags = flags_from_info(e.info, keywords_, &e.other);
  e.modseq = ++highest_;
  auto uid = uidnext_++;
  records += record(uid, e);
  by_base_[e.base] = uid;
  entries_[uid] = std::move(e);
  return uid;
}

folder::snapshot folder::make_snapshot_locked(std::vector<uid_t> claimed) {
  snapshot s;
  s.messages.reserve(entries_.size());
  for (auto const& [uid, e] : entries_) {
    message_info m;
    m.uid = uid;
    m.modseq = e.modseq;
    m.flags = e.flags;
    m.internal_date = e.date;
    m.size = e.size;
    s.messages.push_back(std::move(m));
  }
  s.claimed = std::move(claimed);
  s.uidvalidity = uidvalidity_;
  s.uidnext = uidnext_;
  s.highest_modseq = highest_;
  s.generation = notifier_.generation();
  return s;
}

result<folder::snapshot> folder::sync(bool claim_new) {
  std::lock_guard lock(mutex_);
  if (auto r = current_locked(); !r) return fail(r.error());
  std::vector<uid_t> claimed;
  if (claim_new) {
    for (auto& [uid, e] : entries_) {
      if (!e.in_new) continue;
      auto from = path_ + "/" + e.relative_path();
      auto to = path_ + "/cur/" + e.base + ":2," + e.info;
      if (::rename(from.c_str(), to.c_str()) != 0) continue;  // taken by another program: rescanned later
      e.in_new = false;
      e.has_info = true;
      claimed.push_back(uid);
    }
  }
  return make_snapshot_locked(std::move(claimed));
}

result<mailbox_status> folder::status() {
  std::lock_guard lock(mutex_);
  if (auto r = current_locked(); !r) return fail(r.error());
  mailbox_status st;
  st.uidvalidity = uidvalidity_;
  st.uidnext = uidnext_;
  st.highest_modseq = highest_;
  for (auto const& [_, e] : entries_) {
    ++st.messages;
    st.size += e.size;
    if (!e.flags.has(system_flag::seen)) ++st.unseen;
    if (e.flags.has(system_flag::deleted)) ++st.deleted;
    if (e.in_new) ++st.recent;
  }
  return st;
}

std::uint32_t folder::uidvalidity() {
  std::lock_guard lock(mutex_);
  if (!loaded_) (void)load_locked();
  return uidvalidity_;
}

result<std::string> folder::file_path(uid_t uid) {
  std::lock_guard lock(mutex_);
  if (!loaded_) {
    if (auto r = load_locked(); !r) return fail(r.error());
  }
  auto it = entries_.find(uid);
  if (it == entries_.end()) return fail(errc::no_such_message);
  auto path = path_ + "/" + it->second.relative_path();
  if (::access(path.c_str(), F_OK) == 0) return path;
  // Renamed by another program since the last scan (new flags): look again.
  if (auto r = scan_locked(true); !r) return fail(r.error());
  it = entries_.find(uid);
  if (it == entries_.end()) return fail(errc::no_such_message);
  return path_ + "/" + it->second.relative_path();
}

result<store_flags_result> folder::set_flags(std::vector<message_info>& view, std::span<uid_t const> uids, flag_op op,
                                             flag_set const& f, std::optional<modseq_t> unchanged_since) {
  std::lock_guard lock(mutex_);
  if (auto r = current_locked(); !r) return fail(r.error());
  store_flags_result out;
  std::string records;
  auto keywords_before = keywords_.size();
  std::error_code failure;
  for (auto uid : uids) {
    auto idx = mailroom::store::detail::find_uid(view, uid);
    if (idx == std::size_t(-1)) continue;
    auto it = entries_.find(uid);
    if (it == entries_.end()) continue;
    auto& e = it->second;
    if (unchanged_since && e.modseq > *unchanged_since) {
      out.modified.push_back(uid);
      continue;
    }
    flag_set nf = e.flags;
    if (mailroom::store::detail::apply_flags(nf, op, f)) {
      auto info = info_from_flags(nf, keywords_, e.other);
      if (!info) {
        failure = errc::too_many_keywords;
        break;
      }
      if (keywords_.size() != keywords_before) {
        if (auto r = save_keywords_locked(); !r) {
          failure = r.error();
          break;
        }
        keywords_before = keywords_.size();
      }
      auto from = path_ + "/" + e.relative_path();
      auto to = path_ + "/cur/" + e.base + ":2," + *info;
      if (::rename(from.c_str(), to.c_str()) != 0) {
        if (errno != ENOENT) {
          failure = last_error();
          break;
        }
        continue;  // moved or expunged by another program; the next sync reports it
      }
      e.info = *info;
      e.has_info = true;
      e.in_new = false;
      e.flags = std::move(nf);
      e.modseq = ++highest_;
      records += record(uid, e);
    }
    view[idx].flags = e.flags;
    view[idx].modseq = e.modseq;
    out.changed.push_back(idx);
  }
  if (auto r = append_log_locked(records); !r) {
    loaded_ = false;  // not durable: reload from disk rather than serve it
    if (!failure) failure = r.error();
  }
  if (!records.empty()) notifier_.notify();
  if (failure) return fail(failure);
  return out;
}

result<folder::removed> folder::remove(std::span<uid_t const> uids, bool require_deleted) {
  std::lock_guard lock(mutex_);
  if (auto r = current_locked(); !r) return fail(r.error());
  removed out;
  std::string records;
  std::error_code failure;
  for (auto uid : uids) {
    auto it = entries_.find(uid);
    if (it == entries_.end()) continue;
    if (require_deleted && !it->second.flags.has(system_flag::deleted)) continue;
    if (::unlink((path_ + "/" + it->second.relative_path()).c_str()) != 0 && errno != ENOENT) {
      failure = last_error();
      break;
    }
    if (records.empty()) ++highest_;
    records += '-' + std::to_string(uid) + ' ' + std::to_string(highest_) + '\n';
    out.uids.push_back(uid);
    out.bytes += it->second.size;
    by_base_.erase(it->second.base);
    entries_.erase(it);
  }
  std::sort(out.uids.begin(), out.uids.end());
  if (auto r = append_log_locked(records); !r) {
    loaded_ = false;
    if (!failure) failure = r.error();
  }
  if (!records.empty()) notifier_.notify();
  if (failure && out.uids.empty()) return fail(failure);
  return out;
}

result<std::string> folder::info_for(flag_set const& f) {
  std::lock_guard lock(mutex_);
  load_keywords_locked();
  auto before = keywords_.size();
  auto info = info_from_flags(f, keywords_);
  if (!info) return fail(errc::too_many_keywords);
  if (keywords_.size() != before)
    if (auto r = save_keywords_locked(); !r) return fail(r.error());
  return *info;
}

result<std::vector<uid_t>> folder::adopt(std::vector<adopted_file> const& files) {
  std::lock_guard lock(mutex_);
  if (!loaded_) {
    // Loading scans, which finds these files and gives them UIDs.
    if (auto r = load_locked(); !r) return fail(r.error());
  }
  std::vector<uid_t> out;
  std::string records;
  for (auto const& af : files) {
    auto fn = split_file_name(af.file);
    std::string base(fn.base);
    if (auto it = by_base_.find(base); it != by_base_.end()) {
      out.push_back(it->second);
      continue;
    }
    auto uid = add_entry_locked(af.file, af.in_new, af.size, af.date, records);
    if (!uid) return fail(uid.error());
    out.push_back(*uid);
  }
  if (auto r = append_log_locked(records); !r) {
    loaded_ = false;
    return fail(r.error());
  }
  if (!records.empty()) notifier_.notify();
  return out;
}

std::vector<std::pair<uid_t, entry>> folder::entries_for(std::span<uid_t const> uids) {
  std::lock_guard lock(mutex_);
  if (!loaded_) {
    if (!load_locked()) return {};
  } else {
    (void)scan_locked(false);
  }
  std::vector<std::pair<uid_t, entry>> out;
  for (auto uid : uids)
    if (auto it = entries_.find(uid); it != entries_.end()) out.emplace_back(uid, it->second);
  return out;
}

}  // namespace mailroom::store::maildir::detail
