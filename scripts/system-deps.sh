#!/usr/bin/env bash
# System packages the test suite drives for real: tmux (the TUI in a real terminal),
# openssh-server (the SSH tests: a real sshd on 127.0.0.1), rsync (backups from the GPU box), a C++
# compiler (llama.cpp, for the GGUF export; cmake and ninja come from PyPI with its build).
# Installs only what is missing; needs root (or sudo) and apt. Elsewhere it says what to install.
set -euo pipefail
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v g++ >/dev/null 2>&1 || need+=(g++)  # llama.cpp for the GGUF export (built once per machine)
command -v make >/dev/null 2>&1 || need+=(make)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: please install: ${need[*]}" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
