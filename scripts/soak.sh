#!/usr/bin/env bash
# Soak: mixed traffic (valid, forged, blocked, oversized) at a fixed rate through the release
# inboxguard binary on loopback, with stand-in Mastodon and remote instances served by the
# driver process (examples/soak.rs). Bounded: stops by itself after SOAK_SECS. Not run in CI.
#
#   scripts/soak.sh                                  # 10 minutes at 200 requests/s
#   SOAK_SECS=60 SOAK_RATE=500 scripts/soak.sh
#
# Prints unexpected answers, the proxy's RSS when ready / after warm-up / at the end (and its
# peak), p50/p99 latency and the proxy's own decision counts; exits 1 if any request got an
# unexpected answer, the proxy died, or its RSS grew past warm-up + 25 % + 8 MiB by the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS="${SOAK_SECS:-600}"
export SOAK_RATE="${SOAK_RATE:-200}"
cargo build --release --locked --quiet --bin inboxguard --example soak
target="${CARGO_TARGET_DIR:-target}"
export INBOXGUARD_BIN="$target/release/inboxguard"
exec "$target/release/examples/soak"
