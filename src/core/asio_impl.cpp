// The one translation unit that compiles Asio (ASIO_SEPARATE_COMPILATION is set for all users).
#include <asio/impl/src.hpp>
