// libFuzzer: RFC 2047 decoding, base subjects, dates, SORT and THREAD on arbitrary header blocks
// (the input split at NUL bytes, one message each). Checks that decoding stays valid UTF-8
// within 3 bytes per input byte, that every SORT is a permutation, and that every THREAD
// response is well-formed and names each message exactly once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/text.hpp"
#include "mailroom/imap/sort.hpp"
#include "mailroom/mime/encoded_word.hpp"

namespace {

// Balanced parentheses, no empty list, numbers 1..n each exactly once.
void check_threads(std::string const& r, std::size_t n) {
  std::vector<int> count(n + 1, 0);
  long depth = 0;
  for (std::size_t i = 0; i < r.size();) {
    char c = r[i];
    if (c == '(') {
      ++depth;
      if (i + 1 >= r.size() || r[i + 1] == ')') std::abort();
      ++i;
    } else if (c == ')') {
      if (--depth < 0) std::abort();
      ++i;
    } else if (c == ' ') {
      if (depth == 0) std::abort();
      ++i;
    } else if (c >= '1' && c <= '9') {
      std::size_t v = 0;
      while (i < r.size() && r[i] >= '0' && r[i] <= '9' && v <= n) v = v * 10 + static_cast<std::size_t>(r[i++] - '0');
      if (depth == 0 || v == 0 || v > n || ++count[v] != 1) std::abort();
    } else {
      std::abort();
    }
  }
  if (depth != 0) std::abort();
  for (std::size_t v = 1; v <= n; ++v)
    if (count[v] != 1) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  using namespace mailroom;
  std::string_view in(reinterpret_cast<char const*>(data), size);

  auto decoded = mime::decode_header_value(in);
  if (!text::is_valid_utf8(decoded) || decoded.size() > 3 * in.size()) std::abort();
  auto base = imap::base_subject(in);
  if (!text::is_valid_utf8(base) || base.size() > decoded.size()) std::abort();
  (void)imap::is_reply_or_forward(in);
  (void)imap::parse_message_date(in);

  std::vector<imap::sort_message> msgs;
  for (std::size_t pos = 0; pos <= in.size() && msgs.size() < 64;) {
    auto end = in.find('\0', pos);
    if (end == std::string_view::npos) end = in.size();
    auto block = in.substr(pos, end - pos);
    auto n = static_cast<std::uint32_t>(msgs.size());
    std::uint8_t b = block.empty() ? 0 : static_cast<std::uint8_t>(block[0]);
    msgs.push_back({n + 1, 2 * n + 7, static_cast<std::int64_t>(b % 4), static_cast<std::uint64_t>(b % 3), block});
    pos = end + 1;
  }
  for (auto key : {imap::sort_key::arrival, imap::sort_key::cc, imap::sort_key::date, imap::sort_key::from,
                   imap::sort_key::size, imap::sort_key::subject, imap::sort_key::to, imap::sort_key::display_from,
                   imap::sort_key::display_to}) {
    imap::sort_criterion by[] = {{key, (size & 1) != 0}, {imap::sort_key::arrival, true}};
    auto order = imap::sort_messages(msgs, by);
    std::vector<bool> seen(msgs.size(), false);
    if (order.size() != msgs.size()) std::abort();
    for (auto i : order) {
      if (i >= msgs.size() || seen[i]) std::abort();
      seen[i] = true;
    }
  }
  check_threads(imap::thread_messages(msgs, imap::thread_algorithm::references, false), msgs.size());
  check_threads(imap::thread_messages(msgs, imap::thread_algorithm::orderedsubject, false), msgs.size());
  return 0;
}
