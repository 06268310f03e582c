#include "mailroom/net/dns/resolver.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <doctest/doctest.h>

#include "support/dnsmasq.hpp"
#include "support/helpers.hpp"

namespace dns = mailroom::net::dns;
using mailroom::result;
using mailroom::task;
using mailroom::testing::dnsmasq;
using mailroom::testing::requires_dnsmasq;
using mailroom::testing::run;
using namespace std::chrono_literals;

namespace {

std::string const long_chunk(300, 'a');  // longer than one character-string (255)

std::vector<std::string> zone() {
  std::vector<std::string> c = {
      "local=/example.test/",
      "local=/in-addr.arpa/",
      "local=/ip6.arpa/",
      "mx-host=example.test,mx-b.example.test,20",
      "mx-host=example.test,mx-c.example.test,30",
      "mx-host=example.test,mx-a.example.test,10",
      "mx-host=example.test,mx-d.example.test,20",
      "mx-host=null.example.test,.,0",
      "host-record=mx-a.example.test,192.0.2.10",
      "host-record=both.example.test,192.0.2.20,2001:db8::20",
      "host-record=v6only.example.test,2001:db8::30",
      "txt-record=nomx.example.test,only text here",
      "txt-record=txt.example.test," + long_chunk + ",tail",
      "txt-record=txt.example.test,v=spf1 -all",
      // Three 250-byte strings: the answer exceeds 512 bytes, so it comes back over TCP.
      "txt-record=big.example.test," + std::string(250, 'x') + "," + std::string(250, 'y') + "," +
          std::string(250, 'z'),
      "ptr-record=10.2.0.192.in-addr.arpa,mx-a.example.test",
      "ptr-record=10.2.0.192.in-addr.arpa,alias.example.test",
      "ptr-record=0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa,both.example.test",
  };
  for (int i = 0; i < 200; ++i)
    c.push_back("host-record=h" + std::to_string(i) + ".example.test,198.51.100." + std::to_string(i));
  return c;
}

dns::options against(dnsmasq const& server) {
  dns::options o;
  o.servers = {server.server()};
  o.timeout = 2000ms;
  return o;
}

// A UDP port that receives queries and never answers.
struct silent_server {
  explicit silent_server(asio::io_context& io)
      : socket(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
  std::string address() const { return "127.0.0.1:" + std::to_string(socket.local_endpoint().port()); }
  asio::ip::udp::socket socket;
};

// A resolver asking a dnsmasq that serves zone().
struct zone_fixture {
  dnsmasq server{zone()};
  asio::io_context io;
  dns::resolver r{io.get_executor(), against(server)};
};

// A resolver asking a server that never answers, giving up after one 200 ms try.
struct silent_fixture {
  asio::io_context io;
  silent_server silent{io};
  dns::resolver r{io.get_executor(), dns::options{{silent.address()}, 200ms, 1}};
};

// The error of a failed lookup; a success yields the empty error_code, which no check matches.
template <class T>
std::error_code error_of(result<T> const& r) {
  return r ? std::error_code() : r.error();
}

std::vector<std::string> hosts(std::vector<dns::mx_record> const& mx) {
  std::vector<std::string> out;
  for (auto const& r : mx) out.push_back(r.host);
  return out;
}

}  // namespace

TEST_SUITE("dns") {

TEST_CASE_FIXTURE(zone_fixture, "dns: MX records come sorted by preference" * requires_dnsmasq()) {
  auto mx = run(io, r.mx("example.test"));
  REQUIRE(mx);
  REQUIRE(mx->size() == 4);
  CHECK((*mx)[0] == dns::mx_record{10, "mx-a.example.test"});
  CHECK((*mx)[1].preference == 20);
  CHECK((*mx)[2].preference == 20);
  auto middle = std::vector<std::string>{(*mx)[1].host, (*mx)[2].host};
  std::sort(middle.begin(), middle.end());
  CHECK(middle == std::vector<std::string>{"mx-b.example.test", "mx-d.example.test"});
  CHECK((*mx)[3] == dns::mx_record{30, "mx-c.example.test"});

  auto dotted = run(io, r.mx("example.test."));
  REQUIRE(dotted);
  CHECK(hosts(*dotted) == hosts(*mx));
}

TEST_CASE_FIXTURE(zone_fixture, "dns: a name with an address but no MX is its own exchanger" * requires_dnsmasq()) {
  auto both = run(io, r.mx("both.example.test."));
  REQUIRE(both);
  CHECK(*both == std::vector<dns::mx_record>{{0, "both.example.test"}});

  auto v6 = run(io, r.mx("v6only.example.test"));
  REQUIRE(v6);
  CHECK(*v6 == std::vector<dns::mx_record>{{0, "v6only.example.test"}});

  auto none = run(io, r.mx("nomx.example.test"));  // exists (TXT), no MX, no address
  CHECK(error_of(none) == dns::errc::no_data);
}

TEST_CASE_FIXTURE(zone_fixture, "dns: a null MX is returned as an empty host" * requires_dnsmasq()) {
  auto mx = run(io, r.mx("null.example.test"));
  REQUIRE(mx);
  CHECK(*mx == std::vector<dns::mx_record>{{0, ""}});
}

TEST_CASE_FIXTURE(zone_fixture, "dns: missing names and missing types are distinct, permanent" * requires_dnsmasq()) {
  auto mx = run(io, r.mx("missing.example.test"));
  CHECK(error_of(mx) == dns::errc::nxdomain);
  CHECK_FALSE(dns::is_temporary(error_of(mx)));

  auto a = run(io, r.a("missing.example.test"));
  CHECK(error_of(a) == dns::errc::nxdomain);

  auto v4 = run(io, r.a("v6only.example.test"));
  CHECK(error_of(v4) == dns::errc::no_data);
  CHECK_FALSE(dns::is_temporary(error_of(v4)));

  auto txt = run(io, r.txt("mx-a.example.test"));
  CHECK(error_of(txt) == dns::errc::no_data);

  auto ptr = run(io, r.ptr(asio::ip::make_address("192.0.2.99")));
  CHECK(error_of(ptr) == dns::errc::nxdomain);
}

TEST_CASE_FIXTURE(zone_fixture, "dns: A and AAAA lookups" * requires_dnsmasq()) {
  auto a = run(io, r.a("both.example.test"));
  REQUIRE(a);
  CHECK(*a == std::vector<asio::ip::address>{asio::ip::make_address("192.0.2.20")});

  auto aaaa = run(io, r.aaaa("both.example.test"));
  REQUIRE(aaaa);
  CHECK(*aaaa == std::vector<asio::ip::address>{asio::ip::make_address("2001:db8::20")});
}

TEST_CASE_FIXTURE(zone_fixture, "dns: TXT joins the strings of a record, keeps records apart" * requires_dnsmasq()) {
  auto txt = run(io, r.txt("txt.example.test"));
  REQUIRE(txt);
  auto records = *txt;
  std::sort(records.begin(), records.end());
  CHECK(records == std::vector<std::string>{long_chunk + "tail", "v=spf1 -all"});

  auto big = run(io, r.txt("big.example.test"));
  REQUIRE(big);
  CHECK(*big == std::vector<std::string>{std::string(250, 'x') + std::string(250, 'y') + std::string(250, 'z')});
}

TEST_CASE_FIXTURE(zone_fixture, "dns: PTR for IPv4 and IPv6" * requires_dnsmasq()) {
  auto v4 = run(io, r.ptr(asio::ip::make_address("192.0.2.10")));
  REQUIRE(v4);
  auto names = *v4;
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"alias.example.test", "mx-a.example.test"});

  auto v6 = run(io, r.ptr(asio::ip::make_address("2001:db8::20")));
  REQUIRE(v6);
  CHECK(*v6 == std::vector<std::string>{"both.example.test"});
}

TEST_CASE_FIXTURE(zone_fixture, "dns: 200 concurrent queries are all answered" * requires_dnsmasq()) {
  std::vector<std::optional<result<std::vector<asio::ip::address>>>> got(200);
  for (int i = 0; i < 200; ++i)
    asio::co_spawn(io, r.a("h" + std::to_string(i) + ".example.test"),
                   [&got, i](std::exception_ptr e, result<std::vector<asio::ip::address>> v) {
                     if (!e) got[i] = std::move(v);
                   });
  io.run_for(20s);

  for (int i = 0; i < 200; ++i) {
    CAPTURE(i);
    REQUIRE(got[i].has_value());
    REQUIRE(got[i]->has_value());
    CHECK(**got[i] == std::vector<asio::ip::address>{asio::ip::make_address("198.51.100." + std::to_string(i))});
  }
}

TEST_CASE_FIXTURE(zone_fixture, "dns: an idle resolver lets its io_context run dry" * requires_dnsmasq()) {
  auto start = std::chrono::steady_clock::now();
  auto a = run(io, r.a("both.example.test"));  // run() returns only when no work is left
  CHECK(a);
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);
}

TEST_CASE_FIXTURE(silent_fixture, "dns: a server that never answers gives a temporary timeout") {
  auto start = std::chrono::steady_clock::now();
  auto mx = run(io, r.mx("example.test"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(error_of(mx) == dns::errc::timeout);
  CHECK(dns::is_temporary(error_of(mx)));
  CHECK(elapsed >= 150ms);
  CHECK(elapsed < 2s);
}

TEST_CASE_FIXTURE(silent_fixture, "dns: malformed names fail without a query") {
  auto embedded_nul = run(io, r.a(std::string_view("bad\0name.test", 13)));
  CHECK(error_of(embedded_nul) == dns::errc::bad_name);

  auto long_label = run(io, r.a(std::string(64, 'l') + ".test"));
  CHECK(error_of(long_label) == dns::errc::bad_name);
  CHECK_FALSE(dns::is_temporary(error_of(long_label)));
}

TEST_CASE("dns: a malformed server entry is rejected at construction") {
  asio::io_context io;
  CHECK_THROWS_AS(dns::resolver(io.get_executor(), dns::options{{"not an address"}, 200ms, 1}), std::invalid_argument);
}

TEST_CASE_FIXTURE(silent_fixture, "dns: cancel() ends outstanding queries with cancelled; the resolver goes on") {
  std::vector<std::optional<result<std::vector<std::string>>>> got(5);
  for (std::size_t i = 0; i < got.size(); ++i)
    asio::co_spawn(io, r.txt("example.test"), [&got, i](std::exception_ptr e, result<std::vector<std::string>> v) {
      if (!e) got[i] = std::move(v);
    });
  io.poll();  // the queries are sent
  r.cancel();
  io.run_for(1s);
  for (auto const& g : got) {
    REQUIRE(g.has_value());
    CHECK(error_of(*g) == dns::errc::cancelled);
    CHECK_FALSE(dns::is_temporary(error_of(*g)));
  }

  auto after = run(io, r.txt("example.test"));
  CHECK(error_of(after) == dns::errc::timeout);
}

TEST_CASE("dns: destroying the resolver completes outstanding queries with cancelled") {
  asio::io_context io;
  silent_server silent(io);
  auto r = std::make_unique<dns::resolver>(io.get_executor(), dns::options{{silent.address()}, 5000ms, 2});

  int done = 0;
  std::vector<std::error_code> errors;
  auto lookup = [&](task<result<std::vector<dns::mx_record>>> t) {
    asio::co_spawn(io, std::move(t), [&](std::exception_ptr e, result<std::vector<dns::mx_record>> v) {
      ++done;
      if (!e && !v) errors.push_back(v.error());
    });
  };
  for (int i = 0; i < 10; ++i) lookup(r->mx("example.test"));
  io.poll();
  REQUIRE(done == 0);
  auto unstarted = r->mx(std::string("example.test"));  // its argument is gone before it runs
  r.reset();
  lookup(std::move(unstarted));
  auto start = std::chrono::steady_clock::now();
  io.run_for(5s);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(done == 11);
  CHECK(errors == std::vector<std::error_code>(11, dns::errc::cancelled));
}

}  // TEST_SUITE("dns")
