#!/usr/bin/env bash
# The scale benchmark: right-sizing and the SLO monitor over 10,000 functions, DynamoDB scaling
# over 1,000 tables (two GSIs each), each run in release mode against a local stub that answers
# like AWS (page sizes, GetMetricData's 500 queries and 100,800 datapoints a call, 20 ms a call,
# throttling past AWS's default rates). Prints one JSON line per run: wall time, peak memory, requests.
#
#   scripts/bench-scale.sh [functions] [tables]      (defaults 10000 1000)
#
# Nothing here talks to AWS: the stub listens on 127.0.0.1. Not part of CI (a release build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
functions="${1:-10000}"
tables="${2:-1000}"
cargo build --release --locked -p trimtab-tests --bin scale-bench >&2
bench="$root/target/release/scale-bench"
RUST_LOG=off "$bench" rightsizing "$functions"
RUST_LOG=off "$bench" dynamodb "$tables"
RUST_LOG=off "$bench" performance "$functions"
