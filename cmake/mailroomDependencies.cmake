# Finds mailroom's dependencies. Used by the build and by the installed mailroomConfig.cmake,
# so both see the same imported targets: Threads::Threads, MbedTLS::{mbedtls,mbedx509,mbedcrypto},
# and c-ares as either c-ares::cares (upstream config) or PkgConfig::MAILROOM_CARES (Debian's .pc).
include(CMakeFindDependencyMacro)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_dependency(Threads)
find_dependency(MbedTLS)

if(NOT TARGET c-ares::cares AND NOT TARGET PkgConfig::MAILROOM_CARES)
  find_package(c-ares CONFIG QUIET)
  if(NOT c-ares_FOUND)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(MAILROOM_CARES REQUIRED IMPORTED_TARGET libcares>=1.16)
  endif()
endif()

if(NOT MAILROOM_ASIO_INCLUDE_DIR)
  find_path(MAILROOM_ASIO_INCLUDE_DIR asio.hpp REQUIRED)
endif()

# libcrypt (Debian's libxcrypt) for crypt(3) password hashes; linked by name so the package stays relocatable.
include(CheckIncludeFileCXX)
check_include_file_cxx(crypt.h MAILROOM_HAVE_CRYPT_H)
if(NOT MAILROOM_HAVE_CRYPT_H)
  message(FATAL_ERROR "mailroom needs crypt.h (Debian: libcrypt-dev)")
endif()
