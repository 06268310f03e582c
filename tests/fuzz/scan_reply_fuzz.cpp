// libFuzzer target: the content-scanner reply readers (what clamd_client, spamd_client and
// rspamd_client read from a hostile or broken scanner) on arbitrary bytes, fed in pieces whose
// size comes from the input. The first byte picks the reader (clamd; spamd CHECK, SYMBOLS or
// REPORT; rspamd HTTP + JSON), the second the piece size.
// Properties checked: no crash; memory bounded by the limits (unconsumed clamd input never
// exceeds one reply plus the piece just fed, a verdict's parts never exceed their limits);
// errors are final (next() and finish() keep failing).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/filter/clamd.hpp"
#include "mailroom/filter/rspamd.hpp"
#include "mailroom/filter/spamd.hpp"

using namespace mailroom::filter;

namespace {

constexpr std::size_t max_reply = 64;

void check(bool ok) {
  if (!ok) std::abort();
}

void clamd(std::string_view in, std::size_t piece) {
  clamd_reply_parser p(max_reply);
  for (std::size_t pos = 0; pos < in.size(); pos += piece) {
    p.feed(in.substr(pos, piece));
    for (;;) {
      auto r = p.next();
      if (!r) {
        check(!p.next() && !p.finish());
        return;
      }
      if (!*r) break;
      check((*r)->size() <= max_reply);
      auto v = interpret_scan_reply(**r);
      if (v) check(v->infected == !v->signature.empty() && v->signature.size() <= max_reply);
    }
    check(p.buffered() <= max_reply + 1 + piece);
  }
  (void)p.finish();
}

/// Feeds in pieces until the parser gives a reply (handed to `bounded`) or an error (which must
/// stick), then ends the stream.
template <class Parser, class Check>
void drive(Parser& p, std::string_view in, std::size_t piece, Check bounded) {
  for (std::size_t pos = 0; pos < in.size(); pos += piece) {
    p.feed(in.substr(pos, piece));
    auto r = p.next();
    if (!r) {
      check(!p.next() && !p.finish());
      return;
    }
    if (*r) {
      bounded(**r);
      return;
    }
  }
  if (auto f = p.finish()) bounded(*f);
}

void spamd(std::string_view in, std::size_t piece, spamd_command cmd) {
  spamd_reply_limits const limits{64, 8, 256};
  spamd_reply_parser p(cmd, limits);
  drive(p, in, piece, [&](spamd_reply const& r) {
    check(r.body.size() <= limits.max_body && r.message.size() <= limits.max_line);
    if (auto v = interpret_spamd_reply(r, cmd))
      check(v->symbols.size() <= limits.max_body && v->report.size() <= limits.max_body);
  });
}

void rspamd(std::string_view in, std::size_t piece) {
  rspamd_reply_limits limits;
  limits.max_line = 256;
  limits.max_headers = 16;
  limits.max_body = 16 * 1024;
  limits.max_depth = 8;
  limits.max_values = 512;
  limits.max_string = 256;
  rspamd_reply_parser p(limits);
  drive(p, in, piece, [&](rspamd_verdict const& v) {
    check(v.symbols.size() <= limits.max_values && v.add_headers.size() <= limits.max_values &&
          v.remove_headers.size() <= limits.max_values && v.action.size() <= limits.max_string &&
          v.smtp_message.size() <= limits.max_string);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t const piece = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<char const*>(data) + 2, size - 2);
  switch (data[0] % 5) {
    case 0: clamd(in, piece); break;
    case 1: spamd(in, piece, spamd_command::check); break;
    case 2: spamd(in, piece, spamd_command::symbols); break;
    case 3: spamd(in, piece, spamd_command::report); break;
    default: rspamd(in, piece); break;
  }
  return 0;
}
