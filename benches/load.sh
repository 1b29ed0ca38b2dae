#!/usr/bin/env bash
# Load harness for inboxguard: on loopback only, compares in one run
#   (a) wrk -> stand-in Mastodon (nginx `return 202`)                     "direct"
#   (b) wrk -> nginx reverse proxy (no verification) -> stand-in            "nginx"
#   (c) wrk -> inboxguard (full verification, 100k rules, warm key cache)  "verified"
#   (d) wrk -> inboxguard, every request from a suspended domain           "suspended"
# then latency at half of (c)'s saturating rate, a reload under load, a spam wave against 50
# content rules, one noisy sender among quiet ones, and inboxguard's peak RSS. The floor is
# what one core can do at best: nginx's pass-through plus one bare RSA-2048 verify per request.
#
# Needs: nginx, wrk and openssl (Debian: apt-get install nginx wrk openssl), a Rust toolchain,
# python3 (free ports). Not for CI: it takes ~5 minutes and wants an otherwise idle machine.
#
#   benches/load.sh                      # defaults below
#   DURATION=20 CONNS=32 benches/load.sh # longer runs, fewer connections
#   KEEP=1 benches/load.sh               # keep the work directory (configs, logs, requests)
#   ONLY=saturating benches/load.sh      # stop after runs (a)-(d) and the floor (~2 minutes)
#   ONLY=half benches/load.sh            # ... and after the half-load runs (~3 minutes)
#   IG_BIN=/path/to/inboxguard benches/load.sh  # measure another build (e.g. before a change)
#
# Pinning: the process under test ((b) or (c)/(d)) runs alone on PROXY_CPU; wrk and the
# stand-in upstream share GEN_CPU; the key server runs on GEN_CPU too (it only works during
# the warm-up).
set -euo pipefail

if [[ -n "${CI:-}" ]]; then
    echo "load.sh: refusing to run under CI (CI=$CI); it is a manual benchmark" >&2
    exit 0
fi

DURATION=${DURATION:-10}        # seconds per measured wrk run
CONNS=${CONNS:-64}              # wrk connections for the saturating runs
REQUESTS=${REQUESTS:-20000}     # pre-signed verified requests (cycled)
SUSPENDED=${SUSPENDED:-5000}    # pre-signed requests from suspended domains
WAVE=${WAVE:-20000}             # pre-signed requests of the wave scene (4 in 5 spam)
NOISY=${NOISY:-5000}            # pre-signed requests from the one noisy sender
SCENE_SHARE=${SCENE_SHARE:-40}  # the noisy scene's quiet traffic, % of (c)'s saturating rate
SCENE_REPEATS=${SCENE_REPEATS:-3} # repeats of the alternating comparisons (content rules, noisy sender)
ACTORS=${ACTORS:-10000}         # distinct keyIds, i.e. keys cached by the proxy
KEYS=${KEYS:-8}                 # distinct RSA-2048 keys behind those keyIds
FIXED_CONNS=${FIXED_CONNS:-64}  # connections of the fixed-rate generator
GEN_CPU=${GEN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

for tool in nginx wrk taskset python3 curl openssl; do
    command -v "$tool" >/dev/null || { echo "load.sh: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/inboxguard-load.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url, deadline seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "load.sh: $1 did not come up" >&2
    return 1
}

echo "== build (release)"
(cd "$ROOT" && cargo build --release --quiet --bin inboxguard --example loadgen_support --example fixed_rate)
IG_BIN=${IG_BIN:-$TARGET/release/inboxguard}
SUPPORT_BIN=$TARGET/release/examples/loadgen_support
FIXED_BIN=$TARGET/release/examples/fixed_rate

echo "== bare RSA-2048 verify on cpu $PROXY_CPU (the floor's crypto half)"
VERIFY_RPS=$(taskset -c "$PROXY_CPU" openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { printf "%.0f", $NF }')
echo "   $VERIFY_RPS verifies/s"

echo "== signing $REQUESTS + $SUSPENDED + $WAVE + $NOISY requests, $ACTORS actors ($KEYS RSA-2048 keys), 100k rules"
taskset -c "$GEN_CPU,$PROXY_CPU" "$SUPPORT_BIN" "$WORK" "$REQUESTS" "$SUSPENDED" "$ACTORS" "$KEYS" "$WAVE" "$NOISY" \
    >"$WORK/support.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 1200; i++)); do
    [[ -f $WORK/ready ]] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/support.log" >&2; exit 1; }
    sleep 0.1
done
[[ -f $WORK/ready ]] || { echo "load.sh: request generation timed out" >&2; exit 1; }
cp "$WORK/domain_blocks.csv" "$WORK/domain_blocks.orig"

UP=$(free_port); NGX=$(free_port); IG=$(free_port); IG_ADMIN=$(free_port)
# The proxy's log goes to a directory of its own: the rule files' directory is watched, and a
# log written there woke the watcher at every line (6,000 times a second at half load).
mkdir -p "$WORK/nginx-up" "$WORK/nginx-proxy" "$WORK/log"

nginx_conf() { # prefix, port, location body
    cat <<EOF
daemon off;
worker_processes 1;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
    client_body_temp_path $1;
    proxy_temp_path $1;
    fastcgi_temp_path $1;
    uwsgi_temp_path $1;
    scgi_temp_path $1;
    keepalive_requests 1000000;
    upstream mastodon { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / { $3 }
    }
}
EOF
}
# The stand-in Mastodon: answer 202, no log.
nginx_conf "$WORK/nginx-up" "$UP" 'access_log off; return 202;' >"$WORK/nginx-up/nginx.conf"
# What operators run today: a plain reverse proxy with an access log, as inboxguard has.
nginx_conf "$WORK/nginx-proxy" "$NGX" "access_log $WORK/nginx-proxy/access.log;
    proxy_pass http://mastodon; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;" >"$WORK/nginx-proxy/nginx.conf"

cat >"$WORK/inboxguard.toml" <<EOF
[server]
listen = "127.0.0.1:$IG"
[upstream]
url = "http://127.0.0.1:$UP"
[admin]
listen = "127.0.0.1:$IG_ADMIN"
[key_fetch]
allow_http = true
allow_private_addresses = true
[key_fetch.resolve]
$(cat "$WORK/resolve.toml")
[[blocklists]]
path = "$WORK/domain_blocks.csv"
# Content rules arrive here for the wave scene (hot reload).
[[blocklists]]
path = "$WORK/rules.toml"
max_shrink = 1.0
# The harness replays a fixed set of signed requests: duplicate suppression would answer
# every replay without forwarding.
[activities]
dedupe_window = "0s"
# Fair share stays on with its defaults (50/s, bursts of 500, per instance): the saturating
# runs spread over 1,000 ordinary and 500 wave instances stay inside it.
EOF
echo "# content rules: none until the wave scene" >"$WORK/rules.toml"

echo "== start: upstream :$UP (cpu $GEN_CPU), nginx proxy :$NGX and inboxguard :$IG (cpu $PROXY_CPU)"
taskset -c "$GEN_CPU" nginx -e "$WORK/nginx-up/error.log" -p "$WORK/nginx-up" -c "$WORK/nginx-up/nginx.conf" &
PIDS+=($!)
taskset -c "$PROXY_CPU" nginx -e "$WORK/nginx-proxy/error.log" -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" &
PIDS+=($!)
taskset -c "$PROXY_CPU" "$IG_BIN" serve --config "$WORK/inboxguard.toml" >"$WORK/log/inboxguard.log" 2>&1 &
IG_PID=$!
PIDS+=("$IG_PID")
wait_http "http://127.0.0.1:$UP/" 10
wait_http "http://127.0.0.1:$NGX/" 10
wait_http "http://127.0.0.1:$IG_ADMIN/readyz" 30

mem() { # stage -> records inboxguard's current and peak RSS
    echo "$1 $(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%d %d", r / 1024, h / 1024 }' "/proc/$IG_PID/status")" >>"$WORK/memory"
}
mem "rules loaded, no traffic"

metric() { # name-with-labels prefix -> summed value
    curl -s "http://127.0.0.1:$IG_ADMIN/metrics" |
        awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

metric_with() { # metric name, a label it must carry -> summed value
    curl -s "http://127.0.0.1:$IG_ADMIN/metrics" |
        awk -v n="$1{" -v l="$2" 'index($0, n) == 1 && index($0, l) { s += $NF } END { printf "%d\n", s }'
}

shed_from() { # key-host regex -> requests from those hosts the proxy dropped or refused, from
    # the access log; `cancelled` (wrk closing its connections at the end of a run) is no shed.
    grep -cE "key_host=\"$1\".* decision=\"(dropped|rejected)\"" "$WORK/log/inboxguard.log" || true
}
cancelled_from() {
    grep -cE "key_host=\"$1\".* reason=\"cancelled\"" "$WORK/log/inboxguard.log" || true
}

# wrk run: name url requests-file connections [delay-ms] -> prints and stores the RESULT line
run() {
    local name=$1 url=$2 file=$3 conns=$4 delay=${5:-0} line perf_pid=
    if [[ -n "${PERF:-}" && $url == *":$IG/" ]]; then
        # Profile the proxy for the length of the run (call graphs; see BENCHMARKS.md).
        perf record -q -g -p "$IG_PID" -o "$WORK/perf-$name.data" -- sleep "$DURATION" 2>/dev/null &
        perf_pid=$!
    fi
    line=$(taskset -c "$GEN_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s \
        -s "$ROOT/benches/load.lua" "$url" -- "$file" "$delay" | grep '^RESULT')
    if [[ -n $perf_pid ]]; then wait "$perf_pid" || true; fi
    printf '%-22s %s\n' "$name" "${line#RESULT }"
    echo "$name ${line#RESULT }" >>"$WORK/results"
}
# Fixed-rate run: name host:port requests-file rate -> prints and stores the RESULT line
fixed() {
    local line
    line=$(taskset -c "$GEN_CPU" "$FIXED_BIN" "$2" "$3" "$4" "$DURATION" "$FIXED_CONNS" | grep '^RESULT')
    printf '%-22s %s\n' "$1" "${line#RESULT }"
    echo "$1 ${line#RESULT }" >>"$WORK/results"
}
median() { # run-name prefix, key -> the median of that key over runs <prefix>_1, _2, ...
    awk -v p="$1_" -v k="$2" 'index($1, p) == 1 && substr($1, length(p) + 1) ~ /^[0-9]+$/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$WORK/results" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
field() { # name key -> value
    awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$WORK/results"
}

echo "== warm-up: fetch and cache all $ACTORS keys through inboxguard"
for ((i = 0; i < 12; i++)); do
    taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d5s -s "$ROOT/benches/load.lua" \
        "http://127.0.0.1:$IG/" -- "$WORK/verified.req" 0 >/dev/null
    fetched=$(metric 'inboxguard_key_fetches_total{result="ok"}')
    echo "   keys fetched: $fetched"
    ((fetched >= ACTORS)) && break
done
mem "after warm-up (keys cached)"
for url in "http://127.0.0.1:$UP/" "http://127.0.0.1:$NGX/"; do
    taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d2s -s "$ROOT/benches/load.lua" "$url" -- "$WORK/verified.req" 0 >/dev/null
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
# The results table and the floor: what every run reports, and all that ONLY=saturating does.
throughput_summary() {
    echo
    echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, wrk -t1 -c$CONNS -d${DURATION}s)"
    echo
    echo "| run | req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx | socket errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    while read -r name _; do
        errs=$(($(field "$name" connect) + $(field "$name" read) + $(field "$name" write) + $(field "$name" timeout)))
        echo "| $name | $(field "$name" rps) | $(ms "$(field "$name" p50_us)") | $(ms "$(field "$name" p99_us)") | $(ms "$(field "$name" p999_us)") | $(ms "$(field "$name" max_us)") | $(field "$name" non2xx) | $errs |"
    done <"$WORK/results"
    echo
    FLOOR=$(awk -v n="$(field nginx rps)" -v v="$VERIFY_RPS" 'BEGIN { if (n > 0 && v > 0) printf "%.0f", 1 / (1 / n + 1 / v); else print 0 }')
    echo "- floor = 1 / (1/nginx + 1/bare verify) = 1 / (1/$(field nginx rps) + 1/$VERIFY_RPS) = $FLOOR req/s"
    echo "- throughput verified / floor: $(ratio "$(field verified rps)" "$FLOOR")"
    echo "- throughput verified / nginx (c/b): $(ratio "$(field verified rps)" "$(field nginx rps)")"
    echo "- throughput suspended / verified (d/c): $(ratio "$(field suspended rps)" "$(field verified rps)")"
    if [[ -n $(field half_direct p99_us) ]]; then
        echo "- added p99 at half load ($HALF_RATE req/s, fixed rate): inboxguard $(ms $(($(field half_verified p99_us) - $(field half_direct p99_us)))) ms, nginx $(ms $(($(field half_nginx p99_us) - $(field half_direct p99_us)))) ms over direct"
    fi
}

echo "== saturating runs: ${DURATION}s each, $CONNS connections"
run direct "http://127.0.0.1:$UP/" "$WORK/verified.req" "$CONNS"
run nginx "http://127.0.0.1:$NGX/" "$WORK/verified.req" "$CONNS"
run verified "http://127.0.0.1:$IG/" "$WORK/verified.req" "$CONNS"
run suspended "http://127.0.0.1:$IG/" "$WORK/suspended.req" "$CONNS"
if [[ ${ONLY:-} == saturating ]]; then
    throughput_summary | tee "$WORK/summary.md"
    exit 0
fi

# Half of (c)'s saturating rate, held by an open-loop generator: request i is due at
# start + i/rate and its latency counts from then, so a stall shows in the percentiles.
HALF_RATE=$(($(field verified rps) / 2))
echo "== half load: $HALF_RATE req/s at a fixed rate, $FIXED_CONNS connections"
fixed half_direct "127.0.0.1:$UP" "$WORK/verified.req" "$HALF_RATE"
fixed half_nginx "127.0.0.1:$NGX" "$WORK/verified.req" "$HALF_RATE"
fixed half_verified "127.0.0.1:$IG" "$WORK/verified.req" "$HALF_RATE"
if [[ ${ONLY:-} == half ]]; then
    throughput_summary | tee "$WORK/summary.md"
    exit 0
fi

echo "== reload under load: the rule file is rewritten (rename) and /admin/reload called every 0.5 s"
reloads_before=$(metric 'inboxguard_rules_reloads_total{result="success"}')
failures_before=$(metric 'inboxguard_rules_reloads_total{result="failure"}')
(
    n=0
    end=$((SECONDS + DURATION))
    while ((SECONDS < end)); do
        n=$((n + 1))
        { cat "$WORK/domain_blocks.orig"; echo "reload$n.example,suspend,false,false,,false"; } >"$WORK/domain_blocks.tmp"
        mv "$WORK/domain_blocks.tmp" "$WORK/domain_blocks.csv"
        curl -s -o /dev/null -X POST "http://127.0.0.1:$IG_ADMIN/admin/reload"
        sleep 0.5
    done
) &
RELOADER=$!
PIDS+=("$RELOADER")
run reload_verified "http://127.0.0.1:$IG/" "$WORK/verified.req" "$CONNS"
wait "$RELOADER" || true
reloads=$(($(metric 'inboxguard_rules_reloads_total{result="success"}') - reloads_before))
mem "after reloads under load"
reload_failures=$(($(metric 'inboxguard_rules_reloads_total{result="failure"}') - failures_before))

echo "== spam wave: 50 content rules loaded (the last matches the wave), then 4 in 5 requests spam"
rules_file() { # file -> in force through /admin/reload
    local before
    cp "$1" "$WORK/rules.toml"
    before=$(metric 'inboxguard_rules_reloads_total{result="success"}')
    curl -s -o /dev/null -X POST "http://127.0.0.1:$IG_ADMIN/admin/reload"
    (($(metric 'inboxguard_rules_reloads_total{result="success"}') > before)) ||
        { echo "load.sh: $1 did not load" >&2; exit 1; }
}
echo "# content rules: none" >"$WORK/no_content_rules.toml"
rules_file "$WORK/content_rules.toml"
CONTENT_RULES=$(grep -c '^\[\[content_rules\]\]' "$WORK/rules.toml")
echo "   content rules loaded: $CONTENT_RULES"
# Cache the wave accounts' keys (spam from them is dropped meanwhile).
taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d3s -s "$ROOT/benches/load.lua" \
    "http://127.0.0.1:$IG/" -- "$WORK/wave.req" 0 >/dev/null
# Verified throughput without and with the rules, alternating, as the noisy scene does.
for ((n = 1; n <= SCENE_REPEATS; n++)); do
    rules_file "$WORK/no_content_rules.toml"
    run "verified_norules_$n" "http://127.0.0.1:$IG/" "$WORK/verified.req" "$CONNS"
    rules_file "$WORK/content_rules.toml"
    run "verified_rules50_$n" "http://127.0.0.1:$IG/" "$WORK/verified.req" "$CONNS"
done
total_before=$(metric 'inboxguard_requests_total{')
dropped_before=$(metric 'inboxguard_requests_total{decision="dropped",reason="content_rule"}')
run wave "http://127.0.0.1:$IG/" "$WORK/wave.req" "$CONNS"
WAVE_TOTAL=$(($(metric 'inboxguard_requests_total{') - total_before))
WAVE_DROPPED=$(($(metric 'inboxguard_requests_total{decision="dropped",reason="content_rule"}') - dropped_before))
WAVE_MATCHES=$(metric_with inboxguard_content_rule_matches_total 'rule="discord-wave"')
OTHER_MATCHES=$(($(metric 'inboxguard_content_rule_matches_total{') - WAVE_MATCHES))
mem "after the wave"

echo "== noisy sender: quiet traffic from 400 instances at $SCENE_SHARE % of (c), alone, then beside one instance sending 10x each of theirs"
QUIET_RATE=$(($(field verified rps) * SCENE_SHARE / 100))
NOISY_RATE=$((QUIET_RATE / 40)) # 10x one of 400 instances
echo "   quiet: $QUIET_RATE req/s, noisy: $NOISY_RATE req/s, both at a fixed rate"
# Cache the noisy accounts' keys, then let its bucket refill.
taskset -c "$GEN_CPU" wrk -t1 -c4 -d3s -s "$ROOT/benches/load.lua" "http://127.0.0.1:$IG/" -- "$WORK/noisy.req" 10 >/dev/null
sleep 10 # a full burst again
# A p99 from one 10 s run moves by a quarter between runs on this kind of machine: the two
# conditions alternate SCENE_REPEATS times and the summary compares their medians.
LIMITED=0
for ((n = 1; n <= SCENE_REPEATS; n++)); do
    fixed "quiet_$n" "127.0.0.1:$IG" "$WORK/others.req" "$QUIET_RATE"
    sleep 2 # the noisy sender's bucket refills between repeats
    limited_before=$(metric 'inboxguard_requests_total{decision="rejected",reason="rate_limited"}')
    fixed "noisy_$n" "127.0.0.1:$IG" "$WORK/noisy.req" "$NOISY_RATE" >/dev/null &
    NOISE=$!
    fixed "quiet_beside_noisy_$n" "127.0.0.1:$IG" "$WORK/others.req" "$QUIET_RATE"
    wait "$NOISE"
    LIMITED=$((LIMITED + $(metric 'inboxguard_requests_total{decision="rejected",reason="rate_limited"}') - limited_before))
done
# Ordinary senders (inst*.example) over the whole run: nothing of theirs may be shed.
NORMAL_SHED=$(($(shed_from 'inst[0-9]+\.example') - $(cancelled_from 'inst[0-9]+\.example')))

HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$IG_PID/status")
RSS_KB=$(awk '/^VmRSS/ { print $2 }' "/proc/$IG_PID/status")
RULES=$(metric 'inboxguard_rules_loaded')
FETCHED=$(metric 'inboxguard_key_fetches_total{result="ok"}')
FORWARDED=$(metric 'inboxguard_requests_total{decision="forwarded"')
REFUSED=$(metric 'inboxguard_requests_total{decision="rejected",reason="suspended_key_host"}')
WAVE_SHED=$(metric 'inboxguard_requests_total{decision="dropped",reason="content_rule"}')
RATE_LIMITED=$(metric 'inboxguard_requests_total{decision="rejected",reason="rate_limited"}')
CANCELLED=$(metric 'inboxguard_requests_total{decision="rejected",reason="cancelled"}')
OTHER=$(($(metric 'inboxguard_requests_total{') - FORWARDED - REFUSED - WAVE_SHED - RATE_LIMITED - CANCELLED))


{
    throughput_summary
    echo "- reload under load: $reloads successful reloads ($reload_failures failed) of $RULES rules during the run; non-2xx $(field reload_verified non2xx), socket errors $(($(field reload_verified connect) + $(field reload_verified read) + $(field reload_verified write) + $(field reload_verified timeout))), max latency $(ms "$(field reload_verified max_us)") ms"
    echo "- spam wave: verified throughput with $CONTENT_RULES content rules / none (medians of $SCENE_REPEATS alternating runs): $(median verified_rules50 rps) / $(median verified_norules rps) = $(ratio "$(median verified_rules50 rps)" "$(median verified_norules rps)"); wave run $(field wave rps) req/s, $WAVE_DROPPED of $WAVE_TOTAL requests dropped by content rules ($(ratio $((WAVE_DROPPED * 100)) "$WAVE_TOTAL") %, 80 % sent as spam); matches of other rules: $OTHER_MATCHES (must be 0); "
    echo "- noisy sender (medians of $SCENE_REPEATS alternating runs): quiet traffic alone $(median quiet rps) req/s p99 $(ms "$(median quiet p99_us)") ms, beside the noisy sender $(median quiet_beside_noisy rps) req/s p99 $(ms "$(median quiet_beside_noisy p99_us)") ms (throughput $(ratio "$(median quiet_beside_noisy rps)" "$(median quiet rps)")x, p99 $(ratio "$(median quiet_beside_noisy p99_us)" "$(median quiet p99_us)")x); the noisy sender offered $(median noisy rps) req/s, $LIMITED of its requests answered 429 rate_limited"
    echo "- ordinary senders over the whole run: $NORMAL_SHED requests dropped or refused (must be 0; requests wrk abandoned at the end of a run are not counted)"
    echo "- inboxguard peak RSS (VmHWM): $((HWM_KB / 1024)) MiB (now $((RSS_KB / 1024)) MiB) with $RULES rules and $FETCHED keys fetched and cached"
    echo "- inboxguard RSS by stage (current / peak so far, MiB):"
    while read -r r h stage; do echo "  - $stage: $r / $h"; done < <(awk '{ r = $(NF-1); h = $NF; $NF = ""; $(NF-1) = ""; print r, h, $0 }' "$WORK/memory")
    echo "- inboxguard decisions: $FORWARDED forwarded, $REFUSED refused as suspended, $WAVE_SHED dropped by content rules, $RATE_LIMITED refused by fair share, $CANCELLED abandoned by wrk at the end of a run, $OTHER other (must be 0)"
} | tee "$WORK/summary.md"
cp "$WORK/summary.md" "${RESULTS:-/dev/null}" 2>/dev/null || true
