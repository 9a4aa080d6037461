#!/bin/sh
# Installs what building and testing qwen3.hpp needs on Debian 12 (bookworm). Uses sudo when not root.
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    g++ make cmake python3 libxsimd-dev doctest-dev libbenchmark-dev ca-certificates >/dev/null
echo "setup-debian: g++ $(g++ -dumpversion), cmake $(cmake --version | head -1 | cut -d' ' -f3), xsimd, doctest, benchmark installed"
