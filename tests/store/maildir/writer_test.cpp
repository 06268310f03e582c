#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/store/maildir/writer.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
namespace fs = std::filesystem;

namespace {
std::vector<std::string> names_in(std::string const& dir) {
  std::vector<std::string> out;
  for (auto const& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}
}  // namespace

TEST_CASE("a committed message is in new/ with its content and size in the name") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto dir = store::maildir::directory::open(tmp.path() + "/Maildir", pool).value();
  for (auto sub : {"tmp", "new", "cur"}) CHECK(fs::is_directory(tmp.path() + "/Maildir/" + sub));
  auto name = testing::run(io, [&]() -> task<std::string> {
    auto w = store::maildir::writer::create(dir).value();
    std::string big(200000, 'x');  // larger than the write buffer
    REQUIRE(w->write(std::string_view("Subject: a\r\n\r\n")));
    REQUIRE(w->write(big));
    co_return (co_await w->commit()).value();
  }());
  CHECK(name.find(",S=200014") != std::string::npos);
  CHECK(name.find('/') == std::string::npos);
  CHECK(testing::read_file(tmp.path() + "/Maildir/new/" + name).size() == 200014);
  CHECK(names_in(tmp.path() + "/Maildir/tmp").empty());
}

TEST_CASE("an aborted or abandoned message leaves nothing behind") {
  testing::temp_dir tmp;
  blocking_pool pool(1);
  auto dir = store::maildir::directory::open(tmp.path(), pool).value();
  {
    auto w = store::maildir::writer::create(dir).value();
    REQUIRE(w->write(std::string_view("partial")));
    CHECK(names_in(tmp.path() + "/tmp").size() == 1);
    w->abort();
  }
  { auto w = store::maildir::writer::create(dir).value(); }  // destroyed uncommitted
  CHECK(names_in(tmp.path() + "/tmp").empty());
  CHECK(names_in(tmp.path() + "/new").empty());
}

TEST_CASE("concurrent commits all land, sharing directory syncs") {
  testing::temp_dir tmp;
  blocking_pool pool(4);
  asio::io_context io;
  auto dir = store::maildir::directory::open(tmp.path(), pool).value();
  int done = 0;
  for (int i = 0; i < 64; ++i)
    asio::co_spawn(io, [&, i]() -> task<void> {
      auto w = store::maildir::writer::create(dir).value();
      REQUIRE(w->write(std::to_string(i)));
      REQUIRE(co_await w->commit());
      ++done;
    }, asio::detached);
  io.run_for(std::chrono::seconds(30));
  CHECK(done == 64);
  CHECK(names_in(tmp.path() + "/new").size() == 64);
}

TEST_CASE("a Maildir removed while running is recreated") {
  testing::temp_dir tmp;
  blocking_pool pool(1);
  asio::io_context io;
  auto dir = store::maildir::directory::open(tmp.path() + "/md", pool).value();
  fs::remove_all(tmp.path() + "/md");
  testing::run(io, [&]() -> task<void> {
    auto w = store::maildir::writer::create(dir).value();
    REQUIRE(w->write(std::string_view("x")));
    REQUIRE(co_await w->commit());
  }());
  CHECK(names_in(tmp.path() + "/md/new").size() == 1);
  // new/ vanishing between create and commit is survived too.
  testing::run(io, [&]() -> task<void> {
    auto w = store::maildir::writer::create(dir).value();
    fs::remove_all(tmp.path() + "/md/new");
    REQUIRE(w->write(std::string_view("y")));
    REQUIRE(co_await w->commit());
  }());
  CHECK(names_in(tmp.path() + "/md/new").size() == 1);
}
