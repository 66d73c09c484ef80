#!/usr/bin/env bash
# llama.cpp for GGUF export (`zelda-tui export RUN --gguf ...`): its own converter and llama-cpp-python.
#
# PyPI has llama-cpp-python only as an sdist; it vendors llama.cpp with convert_hf_to_gguf.py and gguf-py.
# Built once per machine into a cache outside the checkout (a fresh clone on the same machine reuses it):
#   $CACHE/llama_cpp_python-$VERSION.tar.gz    the sdist (pinned)
#   $CACHE/wheels/llama_cpp_python-*.whl       the bindings with llama.cpp (CPU build; the compile is the slow part)
#   $CACHE/llama.cpp/                          the vendored converter: convert_hf_to_gguf.py, conversion/, gguf-py/
# then the wheel is installed into .venv and .tools/llama-cpp links to $CACHE (where zelda-tui looks).
#
#   scripts/get-llama-cpp.sh            build what is missing (minutes: the C++ compile), install, link
#   scripts/get-llama-cpp.sh --cached   install and link only what the cache already has; never builds
#   scripts/get-llama-cpp.sh --for-tests  build what is missing (make test); a failed build only skips the GGUF tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# the pinned release and its build flags live in zelda_tui/backends/export_runner.py (the box installs the same)
pin() { "$PY" -c "from zelda_tui.backends import export_runner as e; print(e.$1)"; }
VERSION="${LLAMA_CPP_PYTHON_VERSION:-$(pin LLAMA_CPP_PYTHON)}"
CACHE="${ZELDA_TUI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zelda-tui}/llama-cpp-$VERSION"
SDIST="$CACHE/llama_cpp_python-$VERSION.tar.gz"

wheel() { ls "$CACHE"/wheels/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1; }

if [ "${1:-}" = "--for-tests" ]; then
    # make test: build once per machine (cached), but a machine that cannot compile it still runs every
    # other test; the GGUF export tests then skip, and this says why
    if ! bash "$0"; then
        echo "get-llama-cpp: could not build llama.cpp here; the GGUF export tests are skipped (make llama-cpp retries)" >&2
    fi
    exit 0
fi
if [ "${1:-}" = "--cached" ]; then
    if [ -z "$(wheel)" ] || [ ! -f "$CACHE/llama.cpp/convert_hf_to_gguf.py" ]; then
        echo "get-llama-cpp: no cached llama.cpp build in $CACHE; the GGUF export tests are skipped (make llama-cpp builds it)"
        exit 0
    fi
else
    mkdir -p "$CACHE/wheels"
    if [ ! -f "$SDIST" ]; then
        "$PY" -m pip download -q --no-deps --no-binary :all: -d "$CACHE" "llama-cpp-python==$VERSION"
    fi
    if [ ! -f "$CACHE/llama.cpp/convert_hf_to_gguf.py" ]; then
        rm -rf "$CACHE/llama.cpp.part" && mkdir -p "$CACHE/llama.cpp.part"
        tar xzf "$SDIST" -C "$CACHE/llama.cpp.part" --strip-components=3 \
            "llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" \
            "llama_cpp_python-$VERSION/vendor/llama.cpp/conversion" "llama_cpp_python-$VERSION/vendor/llama.cpp/gguf-py"
        rm -rf "$CACHE/llama.cpp" && mv "$CACHE/llama.cpp.part" "$CACHE/llama.cpp"
    fi
    if [ -z "$(wheel)" ]; then
        echo "get-llama-cpp: compiling llama.cpp (llama-cpp-python $VERSION); minutes on a small machine" >&2
        start=$(date +%s)
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        CMAKE_ARGS="${CMAKE_ARGS:-$(pin LLAMA_CPP_CMAKE_ARGS)}" \
            "$PY" -m pip wheel -q --no-deps -w "$CACHE/wheels" "$SDIST"
        echo "get-llama-cpp: built in $(( $(date +%s) - start )) s" >&2
    fi
fi
"$PY" -m pip install -q "$(wheel)"
mkdir -p .tools
ln -sfn "$CACHE" .tools/llama-cpp
echo "get-llama-cpp: llama-cpp-python $VERSION and llama.cpp's converter in .tools/llama-cpp"
