#!/bin/sh
# Installs what building and testing qwen3.hpp needs on Debian 12 (bookworm). Uses sudo when not root.
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    g++ make cmake python3 python3-jsonschema python3-lark libxsimd-dev doctest-dev libbenchmark-dev libcpp-httplib-dev pkg-config \
    nginx ca-certificates >/dev/null
echo "setup-debian: g++ $(g++ -dumpversion), cmake $(cmake --version | head -1 | cut -d' ' -f3), xsimd, doctest, benchmark, cpp-httplib, nginx installed"
# `qwen3 serve`'s tests drive it with the official OpenAI client: Node and tests/server's locked packages
command -v node >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends nodejs >/dev/null
command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
(cd "$(dirname "$0")/../tests/server" && npm ci --silent --no-audit --no-fund)
echo "setup-debian: node $(node --version), tests/server npm packages installed"
