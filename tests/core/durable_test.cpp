#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "mailroom/core/durable.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
namespace fs = std::filesystem;

TEST_CASE("create_directories makes missing parents and children, and is idempotent") {
  testing::temp_dir tmp;
  auto root = tmp.path() + "/a/b/c";
  CHECK_FALSE(create_directories(root, {"tmp", "new"}));
  CHECK(fs::is_directory(root + "/tmp"));
  CHECK(fs::is_directory(root + "/new"));
  CHECK((fs::status(tmp.path() + "/a").permissions() & fs::perms::others_all) == fs::perms::none);
  CHECK_FALSE(create_directories(root, {"tmp", "new"}));  // already there
  std::ofstream(tmp.path() + "/file") << "x";
  CHECK(create_directories(tmp.path() + "/file/sub"));  // a file in the way is an error
}
