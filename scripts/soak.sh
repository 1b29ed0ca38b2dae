#!/usr/bin/env bash
# Soak: mixed traffic (valid, forged, blocked, oversized) at a fixed rate against a release
# build of the proxy on loopback, with stand-in Mastodon and remote instances in the same
# process (examples/soak.rs). Bounded: stops by itself after SOAK_SECS.
#
#   scripts/soak.sh                                  # 10 minutes at 200 requests/s
#   SOAK_SECS=60 SOAK_RATE=500 scripts/soak.sh
#
# Prints unexpected answers, RSS after setup / after warm-up / at the end, p50/p99 latency
# and the proxy's own decision counts; exits 1 if any request got an unexpected answer.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS="${SOAK_SECS:-600}"
export SOAK_RATE="${SOAK_RATE:-200}"
exec cargo run --release --quiet --example soak
