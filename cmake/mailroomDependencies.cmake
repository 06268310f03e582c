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

# libargon2 (optional; Debian: libargon2-dev) for {ARGON2ID}/{ARGON2I} passwd-file hashes. Only the
# library's own build looks for it: it is a private dependency linked by name, like libcrypt, so a
# static mailroom's consumers need just the library on the linker path. Without it, or with
# -DMAILROOM_WITH_ARGON2=OFF, those users are skipped with a warning and hash_password refuses ARGON2ID.
if(PROJECT_NAME STREQUAL "mailroom")
  set(MAILROOM_WITH_ARGON2 ON CACHE BOOL "Support {ARGON2ID}/{ARGON2I} password hashes when libargon2 is found")
  set(MAILROOM_HAVE_ARGON2 OFF)
  if(MAILROOM_WITH_ARGON2)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(MAILROOM_ARGON2 QUIET libargon2)
    endif()
    if(MAILROOM_ARGON2_FOUND)
      set(MAILROOM_HAVE_ARGON2 ON)
      message(STATUS "mailroom: libargon2 ${MAILROOM_ARGON2_VERSION}: ARGON2ID/ARGON2I hashes supported")
    else()
      message(STATUS "mailroom: libargon2 not found (Debian: libargon2-dev); ARGON2ID/ARGON2I hashes unsupported")
    endif()
  else()
    message(STATUS "mailroom: MAILROOM_WITH_ARGON2=OFF; ARGON2ID/ARGON2I hashes unsupported")
  endif()
endif()
