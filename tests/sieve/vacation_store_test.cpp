// vacation_store: the in-memory and file-backed stores remember, forget and stay bounded.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "mailroom/sieve/vacation_store.hpp"
#include <unistd.h>

using namespace mailroom::sieve;

TEST_CASE("sieve memory_vacation_store: seen within the period, bounded") {
  memory_vacation_store s(3);
  CHECK_FALSE(s.seen("k", 100, 1000));
  s.record("k", 1000);
  CHECK(s.seen("k", 100, 1050));
  CHECK(s.seen("k", 100, 1100));
  CHECK_FALSE(s.seen("k", 100, 1101));
  CHECK_FALSE(s.seen("other", 100, 1050));
  for (int i = 0; i < 10; ++i) s.record("x" + std::to_string(i), 2000 + i);
  CHECK(s.size() == 3);
  CHECK_FALSE(s.seen("k", 100000, 2010));
  CHECK(s.seen("x9", 100, 2010));
}

TEST_CASE("sieve file_vacation_store: persists across instances, compacts past its size") {
  auto dir = std::filesystem::temp_directory_path() / ("sieve-vac-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "user.vacation";
  std::filesystem::remove(file);
  {
    file_vacation_store s(file, 2048, 1000000);
    CHECK_FALSE(s.seen("h\nsender@x", 86400, 5000));
    s.record("h\nsender@x", 5000);
  }
  file_vacation_store s(file, 2048, 1000000);
  CHECK(s.seen("h\nsender@x", 86400, 6000));
  CHECK_FALSE(s.seen("h\nsender@x", 500, 6000));
  CHECK_FALSE(s.seen("h\nother@x", 86400, 6000));
  for (int i = 0; i < 500; ++i) s.record("k" + std::to_string(i), 10000 + i);
  CHECK(std::filesystem::file_size(file) <= 2048 + 64);
  CHECK(s.seen("k499", 100, 10500));  // the newest survive compaction
  {
    std::ofstream junk(file, std::ios::app);
    junk << "garbage line\n\n12 zz\n";
  }
  CHECK(s.seen("k499", 100, 10500));
  file_vacation_store missing(dir / "no" / "such" / "file");
  CHECK_FALSE(missing.seen("k", 100, 10));
  missing.record("k", 10);  // no directory: a no-op, not a crash
  std::filesystem::remove_all(dir);
}
