#!/usr/bin/env bash
# buf lint (STANDARD + COMMENTS, protos/buf.yaml) and buf format over a protos folder.
# Usage: buf_lint.sh SOURCE_DIR [PROTOS_DIR]. Fails on any lint issue or formatting diff.
set -euo pipefail
src="$1"
protos="${2:-$src/protos}"
buf="$src/tests/node/node_modules/.bin/buf"
if [[ ! -x $buf ]]; then
  echo "buf not found at $buf: run scripts/setup (npm ci in tests/node)" >&2
  exit 1
fi
echo "$("$buf" --version) lint $protos"
"$buf" lint "$protos" --error-format=text
echo "buf format --diff $protos"
"$buf" format "$protos" --diff --exit-code
echo "buf lint: no issues"
