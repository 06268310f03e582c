// The built-in checks as chain filters, over an in-memory zone: what they record, add and refuse.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/filter/checks.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
namespace flt = mailroom::filter;

namespace {

struct run_result {
  std::optional<smtp::reply> connect, mail, rcpt;
  flt::chain_session::message_outcome message;
  std::vector<flt::auth_result> results;
};

// One transaction through a chain: client 192.0.2.1 (or `client`), HELO mx.good.test.
run_result through(std::vector<flt::chain_entry> chain, std::string from, std::string message,
                   std::string client = "192.0.2.1", bool authenticated = false) {
  asio::io_context io;
  smtp::session_info info;
  info.id = "t1";
  info.remote = {asio::ip::make_address(client), 40000};
  info.helo = "mx.good.test";
  if (authenticated) info.auth = auth::identity{"demo"};
  flt::chain_session cs(chain, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  return testing::run(io, [&]() -> task<run_result> {
    run_result r;
    r.connect = co_await cs.connect(info);
    if (r.connect) co_return r;
    auto const at = from.find('@');
    address const sender{from.substr(0, at), from.substr(at + 1)};
    smtp::mail_params const params{};
    r.mail = co_await cs.mail(info, sender, params);
    if (r.mail) co_return r;
    address const to{"demo", "example.test"};
    r.rcpt = co_await cs.rcpt(to);
    if (r.rcpt) co_return r;
    cs.accepted(to);
    r.message = co_await cs.message(message, "mx.example.test");
    r.results = cs.current().results;
    co_return r;
  }());
}

std::string result_of(run_result const& r, std::string const& method) {
  for (auto const& x : r.results)
    if (x.method == method) return x.result;
  return "(none)";
}

std::string signed_message(flt::dkim::private_key const& key, std::string const& domain, std::string const& from) {
  std::string const m = "From: <" + from + ">\r\nTo: demo@example.test\r\nSubject: hello\r\nDate: Thu, 3 Dec 2026 12:00:00 +0000\r\n"
                        "Message-ID: <1@" + domain + ">\r\n\r\nBody line\r\n";
  flt::dkim::sign_options so;
  so.domain = domain;
  so.selector = "sel";
  std::shared_ptr<flt::dkim::private_key const> k(std::shared_ptr<flt::dkim::private_key const>(), &key);
  flt::dkim::signer s(so, k);
  s.feed(m);
  return s.finish().value() + m;
}

}  // namespace

TEST_CASE("SPF records pass and fail, adds Received-SPF, refuses a fail only when told to") {
  flt::static_dns dns;
  dns.add_txt("good.test", "v=spf1 ip4:192.0.2.1 -all");
  flt::spf_filter_options o;
  o.spf.receiver = "mx.example.test";
  auto r = through({{flt::make_spf_filter(dns, o)}}, "a@good.test", "Subject: x\r\n\r\nx\r\n");
  CHECK_FALSE(r.mail);
  CHECK(result_of(r, "spf") == "pass");
  CHECK(r.message.headers.find("Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=a@good.test") == 0);
  CHECK(r.message.headers.find("Received-SPF: pass") != std::string::npos);

  r = through({{flt::make_spf_filter(dns, o)}}, "a@good.test", "Subject: x\r\n\r\nx\r\n", "192.0.2.99");
  CHECK_FALSE(r.mail);  // recorded only
  CHECK(result_of(r, "spf") == "fail");
  o.reject_fail = true;
  r = through({{flt::make_spf_filter(dns, o)}}, "a@good.test", "Subject: x\r\n\r\nx\r\n", "192.0.2.99");
  REQUIRE(r.mail);
  CHECK(r.mail->code == 550);
  CHECK(r.mail->enhanced == std::array<std::uint8_t, 3>{5, 7, 23});

  // Submission is not checked.
  r = through({{flt::make_spf_filter(dns, o)}}, "a@good.test", "Subject: x\r\n\r\nx\r\n", "192.0.2.99", true);
  CHECK_FALSE(r.mail);
  CHECK(r.results.empty());
}

TEST_CASE("DKIM verification and DMARC: aligned pass, tampering, a p=reject domain refused when enforced") {
  auto key = flt::dkim::private_key::generate_rsa(1024).value();
  flt::static_dns dns;
  dns.add_txt("sel._domainkey.good.test", key->key_record());
  dns.add_txt("_dmarc.good.test", "v=DMARC1; p=reject");
  dns.add_txt("good.test", "v=spf1 -all");
  dns.add_txt("_dmarc.bad.test", "v=DMARC1; p=reject");
  dns.add_txt("bad.test", "v=spf1 -all");
  auto psl = std::make_shared<flt::public_suffix_list const>(flt::public_suffix_list::parse("test\n").value());
  flt::dmarc_filter_options dopt;
  dopt.psl = psl;
  std::vector<flt::chain_entry> chain{{flt::make_spf_filter(dns, {})}, {flt::make_dkim_verify_filter(dns)},
                                      {flt::make_dmarc_filter(dns, dopt)}};

  auto const good = signed_message(*key, "good.test", "a@good.test");
  auto r = through(chain, "bounce@good.test", good);
  CHECK(result_of(r, "spf") == "fail");  // SPF fails, DKIM carries DMARC
  CHECK(result_of(r, "dkim") == "pass");
  CHECK(result_of(r, "dmarc") == "pass");
  CHECK(r.message.what == flt::verdict::kind::accept);
  CHECK(r.message.headers.find("dkim=pass header.d=good.test header.s=sel") != std::string::npos);
  CHECK(r.message.headers.find("dmarc=pass (p=reject dis=none) header.from=good.test") != std::string::npos);

  auto tampered = good;
  tampered.replace(tampered.find("Body line"), 9, "Body LINE");
  r = through(chain, "bounce@good.test", tampered);
  CHECK(result_of(r, "dkim") == "fail");
  CHECK(result_of(r, "dmarc") == "fail");
  CHECK(r.message.what == flt::verdict::kind::accept);  // not enforced: recorded only

  dopt.enforce = true;
  chain.back() = {flt::make_dmarc_filter(dns, dopt)};
  r = through(chain, "x@bad.test", "From: x@bad.test\r\nSubject: forged\r\n\r\nx\r\n");
  CHECK(result_of(r, "dkim") == "none");
  CHECK(r.message.what == flt::verdict::kind::reject);
  REQUIRE(r.message.reply);
  CHECK(r.message.reply->code == 550);
  r = through(chain, "bounce@good.test", good);
  CHECK(r.message.what == flt::verdict::kind::accept);
}

TEST_CASE("DKIM signing on submission: only authenticated sessions, only domains with a key") {
  auto key = flt::dkim::private_key::generate_rsa(1024).value();
  auto table = std::make_shared<flt::dkim::signing_table>();
  table->add("example.test", "s2026", key);
  std::string const m = "From: Demo <demo@example.test>\r\nTo: x@far.test\r\nSubject: hi\r\n\r\nhello\r\n";
  auto r = through({{flt::make_dkim_sign_filter(table)}}, "demo@example.test", m, "192.0.2.1", true);
  REQUIRE(r.message.headers.rfind("DKIM-Signature: ", 0) == 0);
  // The signature verifies against the published key.
  flt::static_dns dns;
  dns.add_txt("s2026._domainkey.example.test", key->key_record());
  auto v = through({{flt::make_dkim_verify_filter(dns)}}, "demo@example.test", r.message.headers + m);
  CHECK(result_of(v, "dkim") == "pass");

  r = through({{flt::make_dkim_sign_filter(table)}}, "demo@example.test", m);  // not authenticated
  CHECK(r.message.headers.empty());
  r = through({{flt::make_dkim_sign_filter(table)}}, "x@other.test", "From: x@other.test\r\n\r\nx\r\n", "192.0.2.1", true);
  CHECK(r.message.headers.empty());
}

TEST_CASE("DNSBL at connect, greylisting at RCPT, rate limits at MAIL") {
  flt::static_dns dns;
  dns.add_address("1.2.0.192.zen.test", "127.0.0.2");
  dns.add_txt("1.2.0.192.zen.test", "listed for testing");
  flt::dnsbl_filter_options bl;
  bl.sites.push_back(flt::dnsbl::parse_site("zen.test").value());
  auto r = through({{flt::make_dnsbl_filter(dns, bl)}}, "a@good.test", "x\r\n");
  REQUIRE(r.connect);
  CHECK(r.connect->code == 554);
  CHECK(r.connect->text.find("zen.test: listed for testing") != std::string::npos);
  r = through({{flt::make_dnsbl_filter(dns, bl)}}, "a@good.test", "x\r\n", "192.0.2.7");
  CHECK_FALSE(r.connect);

  auto now = flt::greylist::clock::now();
  flt::greylist::options go;
  go.now = [&] { return now; };
  auto grey = std::shared_ptr<flt::greylist>(flt::greylist::open(go).value());
  r = through({{flt::make_greylist_filter(grey)}}, "a@good.test", "x\r\n");
  REQUIRE(r.rcpt);
  CHECK(r.rcpt->code == 451);
  now += std::chrono::minutes(6);
  r = through({{flt::make_greylist_filter(grey)}}, "a@good.test", "x\r\n");
  CHECK_FALSE(r.rcpt);

  flt::rate_limiter::options ro;
  ro.limit = 1;
  ro.window = std::chrono::hours(1);
  auto per_ip = std::make_shared<flt::rate_limiter>(ro);
  std::vector<flt::chain_entry> limited{{flt::make_rate_limit_filter(per_ip, nullptr)}};
  CHECK_FALSE(through(limited, "a@good.test", "x\r\n").mail);
  r = through(limited, "b@good.test", "x\r\n");
  REQUIRE(r.mail);
  CHECK(r.mail->code == 450);
  CHECK_FALSE(through(limited, "a@good.test", "x\r\n", "192.0.2.8").mail);  // another client
}
