// The sans-I/O half of clamd.hpp, apart from the client so that fuzzers can compile it alone.
#include "mailroom/filter/clamd.hpp"


#include "mailroom/net/error.hpp"

namespace mailroom::filter {

void clamd_reply_parser::feed(std::string_view bytes) {
  if (error_) return;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

result<std::optional<std::string>> clamd_reply_parser::next() {
  if (error_) return fail(error_);
  std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
  auto end = rest.find_first_of(std::string_view("\0\n", 2));
  if (end == std::string_view::npos) {
    // "+ 1": a CR may still be followed by its LF.
    if (rest.size() > max_ + 1) {
      error_ = make_error_code(scan_errc::reply_too_large);
      buf_.clear();
      buf_.shrink_to_fit();
      pos_ = 0;
      return fail(error_);
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    return std::optional<std::string>{};
  }
  std::string_view line = rest.substr(0, end);
  pos_ += end + 1;
  if (rest[end] == '\n' && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > max_) {
    error_ = make_error_code(scan_errc::reply_too_large);
    return fail(error_);
  }
  return std::optional<std::string>(std::string(line));
}

result<std::string> clamd_reply_parser::finish() {
  auto r = next();
  if (!r) return fail(r.error());
  if (!*r) return fail(net::errc::eof);
  return std::move(**r);
}

result<clamd_verdict> interpret_scan_reply(std::string_view reply) {
  constexpr std::string_view error_suffix = " ERROR", found_suffix = " FOUND", prefix = "stream: ";
  if (reply.ends_with(error_suffix)) {
    if (reply.find("size limit exceeded") != std::string_view::npos) return fail(scan_errc::size_limit_exceeded);
    return fail(scan_errc::scanner_error);
  }
  if (!reply.starts_with(prefix)) return fail(scan_errc::malformed_reply);
  reply.remove_prefix(prefix.size());
  clamd_verdict v;
  if (reply == "OK") return v;
  if (!reply.ends_with(found_suffix) || reply.size() == found_suffix.size()) return fail(scan_errc::malformed_reply);
  reply.remove_suffix(found_suffix.size());
  for (char c : reply)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return fail(scan_errc::malformed_reply);
  v.infected = true;
  v.signature = std::string(reply);
  return v;
}

}  // namespace mailroom::filter
