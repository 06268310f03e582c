// mailroom version. CMake reads the numbers from this file.
#pragma once

#define MAILROOM_VERSION_MAJOR 0
#define MAILROOM_VERSION_MINOR 1
#define MAILROOM_VERSION_PATCH 0
#define MAILROOM_VERSION (MAILROOM_VERSION_MAJOR * 10000 + MAILROOM_VERSION_MINOR * 100 + MAILROOM_VERSION_PATCH)
#define MAILROOM_VERSION_STRING "0.1.0"

namespace mailroom {
inline constexpr int version_major = MAILROOM_VERSION_MAJOR;
inline constexpr int version_minor = MAILROOM_VERSION_MINOR;
inline constexpr int version_patch = MAILROOM_VERSION_PATCH;
inline constexpr const char* version_string = MAILROOM_VERSION_STRING;
}  // namespace mailroom
