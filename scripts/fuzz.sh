#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (not part of CI).
#
#   scripts/fuzz.sh                 # each target 60 s
#   FUZZ_SECS=600 scripts/fuzz.sh   # each target 10 min
#   scripts/fuzz.sh blocklist       # only the named targets
#
# Needs `cargo install cargo-fuzz` and a C++ compiler (libFuzzer is built from source).
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets stable rustc accept them (the sanitizer runtimes ship with stable).
# Works with cargo-fuzz 0.13.2 on stable rustc 1.95 (no nightly toolchain installed).
#
# Seeds live in fuzz/seeds/<target>/ (committed); the growing corpus in fuzz/corpus/<target>/
# and crash inputs in fuzz/artifacts/<target>/ (both git-ignored). A crash stops that target
# and makes the script exit 1 after the others ran: turn the input into a regression test
# in the module that crashed, fix it, and commit both.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECS:-60}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "== $target: ${secs} s"
    # cargo-fuzz default: optimised, with debug assertions and overflow checks.
    rc=0
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"artifacts/$target.log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written|error)' \
        "artifacts/$target.log" || true
    if [ "$rc" -ne 0 ]; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/artifacts/<target>.log)"
    exit 1
fi
echo "no crashes"
