// libFuzzer: the DMARC record parser, the From domain extraction and the Public Suffix List
// parser stay inside their limits; a parsed record's values are in range, and the
// Authentication-Results entry built from anything stays one line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/filter/dmarc.hpp"
#include "mailroom/filter/public_suffix.hpp"

using namespace mailroom::filter;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view in(reinterpret_cast<char const*>(data), size);
  dmarc::record_limits lim;
  lim.max_length = 4096;
  lim.max_tags = 32;
  lim.max_uris = 4;
  auto r = dmarc::parse_record(in, lim);
  if (r) {
    if (in.size() > lim.max_length || !dmarc::is_dmarc_record(in)) std::abort();
    if (r->pct > 100 || r->rua.size() > lim.max_uris || r->ruf.size() > lim.max_uris) std::abort();
    if (r->p_assumed && (r->p != dmarc::policy::none || r->rua.empty())) std::abort();
  }

  static public_suffix_list const psl = *public_suffix_list::parse("com\nco.uk\nuk\n*.ck\n!www.ck\n");
  dmarc::evaluation e;
  if (auto d = dmarc::from_domain(in.substr(0, 8192))) {
    if (d->empty() || d->find('@') != std::string::npos) std::abort();
    e.from_domain = *d;
    (void)psl.organizational_domain(*d);
    (void)dmarc::aligned(*d, "example.com", dmarc::alignment::relaxed, psl);
  }
  if (r) e.rec = *r;
  std::string ar = dmarc::authentication_results(e);
  if (ar.find('\n') != std::string::npos || ar.find('\r') != std::string::npos) std::abort();

  psl_limits pl;
  pl.max_rules = 1000;
  pl.max_line = 256;
  if (auto list = public_suffix_list::parse(in, pl)) {
    if (list->size() > pl.max_rules) std::abort();
    auto m = list->public_suffix(in.substr(0, 300));
    if (m && m->labels == 0) std::abort();
  }
  return 0;
}
