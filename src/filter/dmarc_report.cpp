#include "mailroom/filter/dmarc_report.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::filter::dmarc {

namespace {

constexpr std::size_t max_dkim_per_row = 16;
constexpr std::size_t max_text = 1024;

// The result as given, else pass/fail from the flag.
std::string_view result_text(std::string const& given, bool pass) {
  if (!given.empty()) return given;
  return pass ? "pass" : "fail";
}
std::string_view dkim_result(dkim_signature const& s) { return result_text(s.result, s.pass); }
std::string_view spf_result(auth_results const& a) { return result_text(a.spf_result, a.spf_pass); }

// Text content: escaped, and the characters XML 1.0 forbids (C0 controls except tab/LF/CR, and
// any byte sequence that is not UTF-8) replaced by '?'.
void append_text(std::string& out, std::string_view s) {
  s = s.substr(0, max_text);
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto u = static_cast<unsigned char>(s[i]);
    switch (s[i]) {
      case '&': out += "&amp;"; continue;
      case '<': out += "&lt;"; continue;
      case '>': out += "&gt;"; continue;
      case '"': out += "&quot;"; continue;
      case '\'': out += "&apos;"; continue;
      default: break;
    }
    if (u < 0x20 && u != '\t' && u != '\n' && u != '\r') {
      out += '?';
    } else if (u < 0x80) {
      out += s[i];
    } else {
      // One UTF-8 sequence, or '?' for a byte that does not start a valid one.
      std::size_t len = u >= 0xf0 ? 4 : u >= 0xe0 ? 3 : u >= 0xc0 ? 2 : 1;
      std::string_view seq = s.substr(i, len);
      if (len > 1 && seq.size() == len && text::is_valid_utf8(seq)) {
        out += seq;
        i += len - 1;
      } else {
        out += '?';
      }
    }
  }
}

void element(std::string& out, std::string_view indent, std::string_view name, std::string_view value) {
  out += indent;
  out += '<';
  out += name;
  out += '>';
  append_text(out, value);
  out += "</";
  out += name;
  out += ">\n";
}

std::string_view alignment_letter(alignment a) { return a == alignment::strict ? "s" : "r"; }

std::string failure_options(record const& r) {
  std::string out;
  auto add = [&](bool on, char c) {
    if (!on) return;
    if (!out.empty()) out += ':';
    out += c;
  };
  add(r.fo_all, '0');
  add(r.fo_any, '1');
  add(r.fo_dkim, 'd');
  add(r.fo_spf, 's');
  return out.empty() ? "0" : out;
}

}  // namespace

void aggregate_collector::add(evaluation const& e, asio::ip::address const& source_ip, auth_results const& auth) {
  if (!e.rec || (e.result != outcome::pass && e.result != outcome::fail)) return;
  row_key key;
  key.source_ip = source_ip.to_string();
  key.disposition = to_string(e.disposition);
  key.dkim = e.dkim_aligned ? "pass" : "fail";
  key.spf = e.spf_aligned ? "pass" : "fail";
  key.reason = e.sampled_out ? "sampled_out" : "";
  key.header_from = e.from_domain.substr(0, max_text);
  std::size_t const n = std::min(auth.dkim.size(), max_dkim_per_row);
  for (std::size_t i = 0; i < n; ++i) {
    auto const& s = auth.dkim[i];
    key.auth += s.domain.substr(0, max_text) + '\n' + s.selector.substr(0, max_text) + '\n' + std::string(dkim_result(s)) + '\n';
  }
  key.auth += '\x01' + auth.spf_domain.substr(0, max_text) + '\n' + auth.spf_scope + '\n' + std::string(spf_result(auth));

  auto it = domains_.find(e.policy_domain);
  if (it == domains_.end()) {
    if (rows_ >= max_rows_) {
      ++dropped_;
      return;
    }
    it = domains_.emplace(e.policy_domain, domain_rows{}).first;
  }
  domain_rows& d = it->second;
  auto r = d.rows.find(key);
  if (r == d.rows.end()) {
    if (rows_ >= max_rows_) {
      ++dropped_;
      return;
    }
    row fresh;
    fresh.dkim.assign(auth.dkim.begin(), auth.dkim.begin() + static_cast<std::ptrdiff_t>(n));
    fresh.spf_domain = auth.spf_domain.substr(0, max_text);
    fresh.spf_scope = auth.spf_scope.empty() ? "mfrom" : auth.spf_scope.substr(0, max_text);
    fresh.spf_result = spf_result(auth);
    r = d.rows.emplace(std::move(key), std::move(fresh)).first;
    ++rows_;
  }
  ++r->second.count;
  d.published = *e.rec;
}

std::vector<std::string> aggregate_collector::domains() const {
  std::vector<std::string> out;
  for (auto const& [name, d] : domains_) out.push_back(name);
  return out;
}

std::uint64_t aggregate_collector::messages(std::string_view domain) const {
  auto it = domains_.find(domain);
  if (it == domains_.end()) return 0;
  std::uint64_t total = 0;
  for (auto const& [k, r] : it->second.rows) total += r.count;
  return total;
}

std::vector<report_uri> aggregate_collector::rua(std::string_view domain) const {
  auto it = domains_.find(domain);
  return it == domains_.end() ? std::vector<report_uri>{} : it->second.published.rua;
}

void aggregate_collector::clear() {
  domains_.clear();
  rows_ = 0;
  dropped_ = 0;
}

std::string aggregate_collector::xml(std::string_view domain, report_metadata const& meta) const {
  auto it = domains_.find(domain);
  if (it == domains_.end() || it->second.rows.empty()) return {};
  domain_rows const& d = it->second;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <report_metadata>\n";
  element(out, "    ", "org_name", meta.org_name);
  element(out, "    ", "email", meta.email);
  if (!meta.extra_contact_info.empty()) element(out, "    ", "extra_contact_info", meta.extra_contact_info);
  element(out, "    ", "report_id", meta.report_id);
  out += "    <date_range>\n";
  element(out, "      ", "begin", std::to_string(meta.begin));
  element(out, "      ", "end", std::to_string(meta.end));
  out += "    </date_range>\n  </report_metadata>\n  <policy_published>\n";
  element(out, "    ", "domain", it->first);
  element(out, "    ", "adkim", alignment_letter(d.published.adkim));
  element(out, "    ", "aspf", alignment_letter(d.published.aspf));
  element(out, "    ", "p", to_string(d.published.p));
  element(out, "    ", "sp", to_string(d.published.subdomain_policy()));
  element(out, "    ", "pct", std::to_string(d.published.pct));
  element(out, "    ", "fo", failure_options(d.published));
  out += "  </policy_published>\n";
  for (auto const& [key, r] : d.rows) {
    out += "  <record>\n    <row>\n";
    element(out, "      ", "source_ip", key.source_ip);
    element(out, "      ", "count", std::to_string(r.count));
    out += "      <policy_evaluated>\n";
    element(out, "        ", "disposition", key.disposition);
    element(out, "        ", "dkim", key.dkim);
    element(out, "        ", "spf", key.spf);
    if (!key.reason.empty()) {
      out += "        <reason>\n";
      element(out, "          ", "type", key.reason);
      out += "        </reason>\n";
    }
    out += "      </policy_evaluated>\n    </row>\n    <identifiers>\n";
    element(out, "      ", "envelope_from", r.spf_scope == "mfrom" ? r.spf_domain : std::string());
    element(out, "      ", "header_from", key.header_from);
    out += "    </identifiers>\n    <auth_results>\n";
    for (auto const& s : r.dkim) {
      out += "      <dkim>\n";
      element(out, "        ", "domain", s.domain.substr(0, max_text));
      if (!s.selector.empty()) element(out, "        ", "selector", s.selector);
      element(out, "        ", "result", dkim_result(s));
      out += "      </dkim>\n";
    }
    out += "      <spf>\n";
    element(out, "        ", "domain", r.spf_domain);
    element(out, "        ", "scope", r.spf_scope);
    element(out, "        ", "result", r.spf_result);
    out += "      </spf>\n    </auth_results>\n  </record>\n";
  }
  out += "</feedback>\n";
  return out;
}

}  // namespace mailroom::filter::dmarc
