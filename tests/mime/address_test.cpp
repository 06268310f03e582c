#include <doctest/doctest.h>

#include "mailroom/mime/address.hpp"

using namespace mailroom::mime;

TEST_CASE("address lists: name-addr, addr-spec, quoted names, comments, groups, routes") {
  auto a = parse_address_list("\"Doe, John\" <john@example.org>, jane@example.net (Jane), <x@y.z>");
  REQUIRE(a.size() == 3);
  CHECK(a[0].name == "Doe, John");
  CHECK(a[0].mailbox == "john");
  CHECK(a[0].host == "example.org");
  CHECK(a[1].name.empty());
  CHECK(a[1].mailbox == "jane");
  CHECK(a[1].host == "example.net");
  CHECK(a[2].mailbox == "x");
  auto g = parse_address_list("Team: ann@a.example, Bob <bob@b.example>;, undisclosed-recipients:;");
  REQUIRE(g.size() == 6);
  CHECK(g[0].group);
  CHECK(g[0].mailbox == "Team");
  CHECK(g[1].mailbox == "ann");
  CHECK(g[2].name == "Bob");
  CHECK(g[3].group_end);
  CHECK(g[4].group);
  CHECK(g[4].mailbox == "undisclosed-recipients");
  CHECK(g[5].group_end);
  auto r = parse_address_list("Old <@relay1,@relay2:user@host.example>");
  REQUIRE(r.size() == 1);
  CHECK(r[0].route == "@relay1,@relay2");
  CHECK(r[0].mailbox == "user");
  auto q = parse_address_list("\"odd local\"@example.org, Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>");
  REQUIRE(q.size() == 2);
  CHECK(q[0].mailbox == "\"odd local\"");
  CHECK(q[1].name == "Pete");
  CHECK(q[1].mailbox == "pete");
  CHECK(q[1].host == "silly.test");
  // Garbage never fails and stays bounded.
  CHECK(parse_address_list("<<<>>>,,,;;;:::@@@").size() <= 10);
  CHECK(parse_address_list(std::string(100000, ',') + "a@b").size() == 1);
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "a@b,";
  CHECK(parse_address_list(many).size() == 1000);
}
