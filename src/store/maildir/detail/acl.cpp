#include "acl.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "folder.hpp"
#include "mailroom/core/durable.hpp"

namespace mailroom::store::maildir::detail {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

// Dovecot's names for the standard rights, usable after ':' in place of letters.
struct named_right {
  std::string_view name;
  char letter;
};
constexpr named_right named_rights[] = {{"lookup", 'l'},        {"read", 'r'},          {"write", 'w'},
                                        {"write-seen", 's'},    {"write-deleted", 't'}, {"insert", 'i'},
                                        {"post", 'p'},          {"expunge", 'e'},       {"create", 'k'},
                                        {"delete", 'x'},        {"admin", 'a'}};

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// "lrs :write-seen post" -> the rights; nullopt for a letter outside "lrswipkxtea" or text after
// the letters that does not start with ':' (Dovecot refuses both).
std::optional<rights> parse_rights_field(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  std::size_t n = 0;
  while (n < s.size() && !is_blank(s[n]) && s[n] != ':') ++n;
  rights out;
  for (char c : s.substr(0, n)) {  // letters one by one: Dovecot knows neither "c" nor "d" here
    if (rights::all.find(c) == std::string_view::npos) return std::nullopt;
    out.add(*rights::parse(std::string_view(&c, 1)));
  }
  s.remove_prefix(n);
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  if (s.empty()) return out;
  if (s.front() != ':') return std::nullopt;
  s.remove_prefix(1);
  while (!s.empty()) {
    while (!s.empty() && (is_blank(s.front()) || s.front() == ',')) s.remove_prefix(1);
    std::size_t len = 0;
    while (len < s.size() && !is_blank(s[len]) && s[len] != ',') ++len;
    auto name = s.substr(0, len);
    s.remove_prefix(len);
    for (auto const& r : named_rights)
      if (r.name == name) out.add(*rights::parse(std::string_view(&r.letter, 1)));
    // Other names are Dovecot extensions (or plugins' rights): nothing mailroom enforces.
  }
  return out;
}

// Dovecot's identifier syntax -> ours. nullopt: a kind we keep but do not interpret; "" unknown.
std::optional<std::string> our_identifier(std::string_view id) {
  if (id.starts_with("user=")) return std::string(id.substr(5));
  if (id == "anyone" || id == "anonymous") return std::string("anyone");
  if (id == "authenticated") return std::string("authenticated");
  if (id == "owner" || id.starts_with("group=") || id.starts_with("group-override=")) return std::nullopt;
  return std::string();
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

result<std::vector<acl_line>> parse_acl(std::string_view content) {
  std::vector<acl_line> out;
  while (!content.empty()) {
    auto nl = content.find('\n');
    auto line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view{} : content.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    acl_line entry{std::string(line), std::nullopt, {}};
    if (line.empty() || line.front() == '#') {
      out.push_back(std::move(entry));
      continue;
    }
    std::string id;
    std::string_view rest;
    if (line.front() == '"') {  // "<id with spaces>", '\' escapes the next character
      std::size_t i = 1;
      bool closed = false;
      for (; i < line.size(); ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) id += line[++i];
        else if (line[i] == '"') {
          closed = true;
          break;
        } else id += line[i];
      }
      if (!closed) return fail(errc::corrupt);
      rest = line.substr(i + 1);
      if (!rest.empty() && rest.front() != ' ') return fail(errc::corrupt);
    } else {
      auto sp = line.find(' ');
      id = std::string(line.substr(0, sp));
      rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp);
    }
    bool negative = id.starts_with('-');
    auto ours = our_identifier(negative ? std::string_view(id).substr(1) : std::string_view(id));
    auto granted = parse_rights_field(rest);
    if (!granted) return fail(errc::corrupt);
    if (ours) {
      if (ours->empty()) return fail(errc::corrupt);  // unknown identifier kind (or "user=" alone)
      entry.id = negative ? "-" + *ours : *ours;
      entry.granted = *granted;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::string acl_line_text(std::string_view id, rights r) {
  std::string out;
  if (id.starts_with('-')) {
    out += '-';
    id.remove_prefix(1);
  }
  if (id != "anyone" && id != "authenticated") out += "user=";
  out += id;
  out += ' ';
  out += r.to_string();
  return out;
}

std::vector<acl_entry> acl_entries(std::vector<acl_line> const& lines) {
  std::map<std::string, rights> merged;
  for (auto const& l : lines)
    if (l.id) merged[*l.id].add(l.granted);
  std::vector<acl_entry> out;
  for (auto const& [id, r] : merged) out.push_back({id, r});
  return out;
}

result<std::vector<acl_entry>> read_acl(std::string const& dir) {
  auto content = read_small_file(dir + "/" + std::string(acl_file_name));
  if (!content) {
    if (content.error() == std::errc::no_such_file_or_directory) return std::vector<acl_entry>{};
    return fail(content.error());
  }
  auto lines = parse_acl(*content);
  if (!lines) return fail(lines.error());
  return acl_entries(*lines);
}

result<void> write_acl_entry(std::string const& dir, std::string_view id, std::optional<rights> r) {
  auto const path = dir + "/" + std::string(acl_file_name);
  auto const lock_path = path + ".lock";
  int fd = -1;
  for (int attempt = 0;; ++attempt) {
    fd = ::open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) break;
    if (errno != EEXIST) return fail(last_error());
    struct stat st {};
    if (::stat(lock_path.c_str(), &st) == 0 && now_seconds() - st.st_mtime > 120) {
      ::unlink(lock_path.c_str());  // left by a crashed writer (Dovecot's stale_timeout)
      continue;
    }
    if (attempt >= 100) return fail(std::make_error_code(std::errc::device_or_resource_busy));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto give_up = [&](std::error_code ec) -> result<void> {
    ::close(fd);
    ::unlink(lock_path.c_str());
    return fail(ec);
  };
  // Re-read under the lock so a concurrent writer's change is not lost.
  std::vector<acl_line> lines;
  if (auto content = read_small_file(path)) {
    auto parsed = parse_acl(*content);
    if (!parsed) return give_up(parsed.error());
    lines = std::move(*parsed);
  } else if (content.error() != std::errc::no_such_file_or_directory) {
    return give_up(content.error());
  }
  std::string out;
  bool placed = false;
  auto replacement = r && !r->empty() ? std::optional<std::string>(acl_line_text(id, *r)) : std::nullopt;
  for (auto const& l : lines) {
    if (l.id && *l.id == id) {
      if (replacement && !placed) out += *replacement + "\n";
      placed = true;
      continue;
    }
    out += l.text + "\n";
  }
  if (replacement && !placed) out += *replacement + "\n";
  auto ec = write_all(fd, out);
  if (!ec && ::fsync(fd) != 0) ec = last_error();
  if (ec) return give_up(ec);
  ::close(fd);
  if (::rename(lock_path.c_str(), path.c_str()) != 0) {
    auto e = last_error();
    ::unlink(lock_path.c_str());
    return fail(e);
  }
  if (auto e = fsync_directory(dir); e) return fail(e);
  return {};
}

std::vector<std::string> lookup_identifiers(std::vector<acl_entry> const& acl) {
  std::vector<std::string> out;
  for (auto const& e : acl)
    if (!e.identifier.starts_with('-') && e.granted.has('l')) out.push_back(e.identifier);
  return out;
}

}  // namespace mailroom::store::maildir::detail
