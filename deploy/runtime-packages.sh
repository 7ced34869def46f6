#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries a binary links, one a line
# (used by the Dockerfile to install exactly the runtime dependencies of each image).
# Usage: runtime-packages.sh BINARY...
set -euo pipefail
for bin in "$@"; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  real="$(readlink -f "$lib")"
  # Debian 12 is usr-merged: dpkg may know the file under /lib or /usr/lib.
  { dpkg -S "$real" || dpkg -S "/usr$real" || dpkg -S "${real#/usr}"; } 2>/dev/null |
    head -n1 | cut -d: -f1-2 | sed 's/: .*//' ||
    { echo "no package owns $lib" >&2; exit 1; }
done | sort -u
