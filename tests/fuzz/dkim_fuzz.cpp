// libFuzzer: DKIM tag lists, DKIM-Signature values and key records parse within their limits;
// canonicalisation gives the same output however the input is split; the verifier stays inside
// its header limits on any message and always gives a result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/filter/dkim.hpp"

namespace dkim = mailroom::filter::dkim;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view in(reinterpret_cast<char const*>(data), size);
  dkim::limits lim;
  lim.max_header_bytes = 16 * 1024;
  lim.max_header_fields = 100;

  if (auto tags = dkim::parse_tag_list(in, lim)) {
    if (tags->size() > lim.max_tags) std::abort();
    for (auto const& t : *tags)
      if (t.name.data() < in.data() || t.value.data() + t.value.size() > in.data() + in.size()) std::abort();
  }
  if (auto sig = dkim::parse_signature(in, 1'000'000, lim)) {
    if (sig->signed_headers.empty() || sig->signed_headers.size() > lim.max_signed_headers) std::abort();
    if (sig->key_name().size() > 2 * 253 + 12) std::abort();
  }
  (void)dkim::parse_key_record(in, lim);

  // Canonicalisation: whole input versus two pieces split at a point taken from the input.
  std::size_t const cut = size == 0 ? 0 : data[0] % size;
  for (auto c : {dkim::canonicalization::simple, dkim::canonicalization::relaxed}) {
    auto const header = dkim::canonicalize_header(c, in.substr(0, 4096));
    if (c == dkim::canonicalization::relaxed && header.find('\r') != std::string::npos) std::abort();
    dkim::body_hasher whole(c, dkim::algorithm::rsa_sha256), split(c, dkim::algorithm::rsa_sha256);
    whole.update(in);
    split.update(in.substr(0, cut));
    split.update(in.substr(cut));
    if (whole.finish() != split.finish()) std::abort();
    if (whole.canonical_length() != dkim::canonicalize_body(c, in).size()) std::abort();
  }

  // The verifier over the input as a message, in two pieces.
  dkim::verifier v(lim, 1'000'000);
  v.feed(in.substr(0, cut));
  v.feed(in.substr(cut));
  v.finish();
  if (v.signatures().size() > lim.max_header_fields) std::abort();
  dkim::key_answer key{dkim::key_answer::outcome::found, {"v=DKIM1; k=rsa; p=AAAA"}};
  for (std::size_t i = 0; i < v.signatures().size() && i < 3; ++i) {
    auto r = v.verify(i, key);
    if (r.status == dkim::status::pass || r.status == dkim::status::none) std::abort();
    (void)dkim::format_result(r);
  }
  return 0;
}
