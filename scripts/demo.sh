#!/usr/bin/env bash
# Quick start: installs missing Debian packages, builds, generates the sample
# dataset and runs the default pipeline on it.  Arguments are passed on to
# `vlmcurate demo` (e.g. --out DIR --threads N).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
exec build/vlmcurate demo "$@"
