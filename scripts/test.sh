#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the emulator and linter into .venv (pinned,
# from PyPI), then runs every test. Integration tests start their own moto servers on loopback.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/emulator.sh install
cargo test --workspace --locked "$@"
