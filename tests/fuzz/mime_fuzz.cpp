// libFuzzer: the MIME tree parser must stay inside the message and its limits; parameters and
// address lists never fail and stay bounded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailroom/mime/address.hpp"
#include "mailroom/mime/message.hpp"

namespace {
void check(mailroom::mime::part const& p, std::size_t size, std::size_t lo, std::size_t hi) {
  if (p.begin < lo || p.end > hi || p.body_begin < p.begin || p.body_begin > p.end || p.end > size) std::abort();
  for (auto const& c : p.children) check(c, size, p.body_begin, p.end);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view msg(reinterpret_cast<char const*>(data), size);
  mailroom::mime::limits lim;
  lim.max_depth = 20;
  lim.max_parts = 500;
  if (auto p = mailroom::mime::parse(msg, lim)) check(*p, size, 0, size);
  (void)mailroom::mime::parse_parameterized(msg.substr(0, 4096));
  if (mailroom::mime::parse_address_list(msg.substr(0, 8192), 100).size() > 100) std::abort();
  return 0;
}
