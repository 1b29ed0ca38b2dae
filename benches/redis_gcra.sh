#!/usr/bin/env bash
# Latency of the shared fair-share check: the GCRA Lua script replicas run on Redis for every
# delivery ([cluster], src/cluster/ops.rs), against a throwaway redis-server on loopback, one
# client at a time (what one request waits for). Prints redis-benchmark's latency summary.
#
#   benches/redis_gcra.sh            # 50,000 checks
#   N=200000 benches/redis_gcra.sh
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-50000}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SCRIPT=$(python3 - "$ROOT/src/cluster/ops.rs" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.search(r'pub\(super\) const GCRA: &str = r"(.*?)";', text, re.S).group(1).strip())
PY
)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# 50 deliveries/s with a burst of 500 (the default share): interval 20,000 us, tolerance 499 x that.
redis-benchmark -p "$PORT" -n "$N" -c 1 --precision 3 \
    EVAL "$SCRIPT" 1 inboxguard:rate:host:bench.example 20000 9980000 |
    grep -A 2 'latency summary'
