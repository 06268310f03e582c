// Store vocabulary: RFC 4314 rights, ACL identifiers and how rights combine.
#include <doctest/doctest.h>

#include "mailroom/store/types.hpp"

using namespace mailroom::store;

namespace {
rights r(std::string_view letters) { return rights::parse(letters).value(); }
}  // namespace

TEST_CASE("rights: parse, canonical order, obsolete c and d, invalid letters") {
  CHECK(rights().empty());
  CHECK(rights().to_string().empty());
  CHECK(r("").empty());
  CHECK(r("srl").to_string() == "lrs");
  CHECK(r("aetxkpiwsrl").to_string() == "lrswipkxtea");
  CHECK(r("llrr").to_string() == "lr");
  CHECK(rights::full().to_string() == rights::all);
  CHECK(rights::full() == r("lrswipkxtea"));
  CHECK(r("c").to_string() == "kx");   // RFC 2086 create -> k x
  CHECK(r("d").to_string() == "xte");  // RFC 2086 delete -> x t e
  CHECK(r("lcd").to_string() == "lkxte");
  for (auto bad : {"z", "L", "lr ", "0", "l,r", "lr\n", "-l"}) {
    CAPTURE(bad);
    CHECK(!rights::parse(bad));
  }
  auto x = r("lrs");
  CHECK(x.has('l'));
  CHECK(x.has('s'));
  CHECK(!x.has('w'));
  CHECK(!x.has('z'));
  CHECK(!x.has('c'));
  CHECK(r("kx").has('c'));
  CHECK(!r("k").has('c'));
  CHECK(r("xte").has('d'));
  CHECK(!r("xt").has('d'));
  CHECK(x.add(r("wl")).to_string() == "lrsw");
  CHECK(x.remove(r("r")).to_string() == "lsw");
  CHECK(x.remove(rights::full()).empty());
  CHECK(r("rl") == r("lr"));
  CHECK(!(r("l") == r("lr")));
}

TEST_CASE("ACL identifiers: names, anyone, authenticated, '-' for negative rights") {
  for (auto ok : {"bob", "anyone", "authenticated", "-bob", "-anyone", "bob@example.org", "jürgen", "a-b"}) {
    CAPTURE(ok);
    CHECK(valid_acl_identifier(ok));
  }
  for (auto bad : {"", "-", "--", "bo b", "bob\t", "a\nb", "\x7f", "\xff\xfe"}) {
    CAPTURE(bad);
    CHECK(!valid_acl_identifier(bad));
  }
  CHECK(!valid_acl_identifier(std::string(256, 'a')));
  CHECK(valid_acl_identifier(std::string(255, 'a')));
}

TEST_CASE("effective rights: owner has all; union of user, authenticated, anyone; minus negatives") {
  std::vector<acl_entry> acl{{"bob", r("lrs")}, {"anyone", r("l")}, {"authenticated", r("i")}, {"carol", r("lrswi")}};
  CHECK(effective_rights(acl, "alice", "alice") == rights::full());
  CHECK(effective_rights({}, "alice", "alice") == rights::full());
  CHECK(effective_rights(acl, "alice", "bob").to_string() == "lrsi");
  CHECK(effective_rights(acl, "alice", "dave").to_string() == "li");
  CHECK(effective_rights({}, "alice", "dave").empty());
  acl.push_back({"-bob", r("s")});
  acl.push_back({"-anyone", r("i")});
  CHECK(effective_rights(acl, "alice", "bob").to_string() == "lr");
  CHECK(effective_rights(acl, "alice", "dave").to_string() == "l");
  CHECK(effective_rights(acl, "alice", "carol").to_string() == "lrsw");  // -anyone applies to carol too
  acl.push_back({"-authenticated", r("l")});
  CHECK(effective_rights(acl, "alice", "dave").empty());
  acl.push_back({"-alice", rights::full()});  // never limits the owner
  CHECK(effective_rights(acl, "alice", "alice") == rights::full());
}
