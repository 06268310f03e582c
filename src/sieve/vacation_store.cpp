// vacation_store implementations: see vacation_store.hpp.
#include "mailroom/sieve/vacation_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "mailroom/core/durable.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <system_error>
#include <vector>

namespace mailroom::sieve {

bool memory_vacation_store::seen(std::string_view key, std::int64_t period_seconds, std::int64_t now) {
  auto it = entries_.find(std::string(key));
  return it != entries_.end() && it->second >= now - period_seconds;
}

void memory_vacation_store::record(std::string_view key, std::int64_t now) {
  entries_[std::string(key)] = now;
  if (entries_.size() <= max_) return;
  auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                 [](auto const& a, auto const& b) { return a.second < b.second; });
  entries_.erase(oldest);
}

namespace {

std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// key hash -> newest time, from the file; lines that do not parse are skipped.
std::map<std::uint64_t, std::int64_t> load(std::filesystem::path const& file, std::size_t max_bytes) {
  std::map<std::uint64_t, std::int64_t> out;
  std::ifstream in(file);
  std::string line;
  std::size_t read = 0;
  while (std::getline(in, line) && read <= 4 * max_bytes) {
    read += line.size() + 1;
    long long t = 0;
    unsigned long long h = 0;
    if (std::sscanf(line.c_str(), "%lld %llx", &t, &h) != 2) continue;
    auto& slot = out[h];
    slot = std::max<std::int64_t>(slot, t);
  }
  return out;
}

}  // namespace

std::map<std::uint64_t, std::int64_t> const& file_vacation_store::entries() {
  std::error_code ec;
  auto const size = std::filesystem::file_size(file_, ec);
  if (ec) {
    entries_.clear();
    seen_size_ = static_cast<std::uintmax_t>(-1);
    return entries_;
  }
  auto const time = std::filesystem::last_write_time(file_, ec);
  if (size != seen_size_ || time != seen_time_) {
    entries_ = load(file_, max_bytes_);
    seen_size_ = size;
    seen_time_ = time;
  }
  return entries_;
}

bool file_vacation_store::seen(std::string_view key, std::int64_t period_seconds, std::int64_t now) {
  auto const& all = entries();
  auto it = all.find(fnv1a(key));
  return it != all.end() && it->second >= now - period_seconds;
}

void file_vacation_store::record(std::string_view key, std::int64_t now) {
  char line[64];
  std::snprintf(line, sizeof line, "%lld %016llx\n", static_cast<long long>(now),
                static_cast<unsigned long long>(fnv1a(key)));
  {
    std::ofstream out(file_, std::ios::app);
    if (!out) return;
    out << line;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(file_, ec);
  if (ec || size <= max_bytes_) return;
  auto entries = load(file_, max_bytes_);
  std::vector<std::pair<std::int64_t, std::uint64_t>> keep;
  for (auto const& [h, t] : entries)
    if (t >= now - max_age_) keep.emplace_back(t, h);
  std::sort(keep.begin(), keep.end());
  std::size_t const per_line = 34;  // "<10-digit time> <16 hex>\n", roughly
  while (!keep.empty() && keep.size() * per_line > max_bytes_ / 2) keep.erase(keep.begin(), keep.begin() + (keep.size() + 1) / 2);
  std::string text;
  for (auto const& [t, h] : keep) {
    std::snprintf(line, sizeof line, "%lld %016llx\n", static_cast<long long>(t), static_cast<unsigned long long>(h));
    text += line;
  }
  // Durable replacement: a crash leaves the old file or the new one, never an empty one (an
  // empty one would send every sender another reply).
  auto tmp = file_;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool const ok = !write_all(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return;
  std::filesystem::rename(tmp, file_, ec);
  if (!ec) (void)fsync_directory(file_.parent_path().empty() ? std::string(".") : file_.parent_path().string());
}

}  // namespace mailroom::sieve
