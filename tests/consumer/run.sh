#!/usr/bin/env bash
# Builds tests/consumer/project against mailroom in one of three ways and runs it.
#   run.sh build-tree  SOURCE BUILD   find_package against the build tree (export())
#   run.sh install     SOURCE BUILD   cmake --install into a temp prefix, find_package + pkg-config
#   run.sh subdir      SOURCE BUILD   add_subdirectory of the source tree
set -euo pipefail
mode=$1 src=$2 build=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gen=(-DCMAKE_BUILD_TYPE=Release)
case "$mode" in
  build-tree) cmake -S "$src/tests/consumer/project" -B "$work/b" "${gen[@]}" -Dmailroom_DIR="$build" ;;
  install)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    cmake -S "$src/tests/consumer/project" -B "$work/b" "${gen[@]}" -DCMAKE_PREFIX_PATH="$work/prefix"
    pc_dir=$(dirname "$(find "$work/prefix" -name mailroom.pc | head -1)")
    PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs mailroom | grep -q -- '-lmailroom'
    test -f "$work/prefix/include/mailroom/smtp/server.hpp"
    ;;
  subdir) cmake -S "$src/tests/consumer/project" -B "$work/b" "${gen[@]}" -DMAILROOM_SOURCE_DIR="$src" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
cmake --build "$work/b" -j 2 --target consumer
"$work/b/consumer"
