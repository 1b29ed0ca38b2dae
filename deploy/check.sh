#!/usr/bin/env bash
# Validates the deployment artifacts in deploy/ with the real tools where this machine has them:
#
#   nginx       nginx -t on test-site.conf, then a live routing test against stand-in backends
#   prometheus  promtool check rules + promtool test rules (alerts.test.yml)
#   systemd     systemd-analyze verify + security --offline on the unit
#   grafana     JSON syntax, data source variable, panel ids, metric names
#   kubernetes  YAML documents, known fields of volumes and mounts, cross-references between
#               manifests, kubectl kustomize (if present)
#   configs     TOML syntax and the rules inboxguard enforces; `inboxguard check` when
#               INBOXGUARD_BIN names a built binary (e.g. INBOXGUARD_BIN=target/debug/inboxguard)
#   docker      docker build --check (if a Docker daemon answers)
#
# With CI=true, missing tools are installed (apt-get: nginx, prometheus for promtool,
# python3-yaml, systemd for systemd-analyze; pip: PyYAML for a non-Debian python3) and a check
# whose tool is still missing fails, except the systemd checks, which run only
# "if available" and are otherwise skipped. Without CI, a check whose tool is missing is skipped.
# Every check prints one line; the exit status is non-zero if any check failed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
ci=${CI:-false}
tmp=$(mktemp -d /tmp/inboxguard-deploy-check.XXXXXX)
started_pids=()
failures=0

# Stops the processes this script started, by their pid. A check runs in a subshell with its
# own copy of started_pids, so a check that starts processes sets this as its own EXIT trap.
stop_started() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    started_pids=()
}
cleanup() {
    stop_started
    rm -rf "$tmp"
}
trap cleanup EXIT

# run NAME FUNCTION: runs the check in a subshell with errexit in force (a function called
# from `if` would run with errexit silently off) and its output captured; prints one line.
check_no=0
run() {
    local name=$1 fn=$2 rc log
    check_no=$((check_no + 1))
    log=$tmp/check-$check_no.log
    set +e
    (set -e; "$fn") >"$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        printf 'ok    %s\n' "$name"
    elif [ "$rc" -eq 77 ]; then
        printf 'skip  %s: %s\n' "$name" "$(tail -n 1 "$log")"
    else
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$log"
        failures=$((failures + 1))
    fi
}

# missing TOOL WHAT: exit status for a check whose tool is absent (fail under CI, else skip).
missing() {
    echo "$1 not found ($2)"
    if [ "$ci" = true ]; then return 1; fi
    return 77
}

# --- tools -----------------------------------------------------------------------------------

# apt_install PKG...: installs Debian packages without starting the daemons they ship.
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "cannot install $*: not root"
        return 1
    fi
    # Package scripts must not start the daemons they install (nginx on :80, prometheus on
    # :9090): a temporary policy-rc.d forbids it, unless the machine already has one.
    local policy=/usr/sbin/policy-rc.d own_policy=false rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null || rc=$?
    if [ "$own_policy" = true ]; then rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || return "$rc"
    echo "installed $*"
}

install_tools() {
    local pkgs=() updated=false
    command -v nginx >/dev/null || pkgs+=(nginx)
    command -v promtool >/dev/null || pkgs+=(prometheus)
    # Debian's own PyYAML first: Debian 12's python3 refuses `pip install` outside a virtual
    # environment (PEP 668), and may not have pip at all.
    python3 -c 'import yaml' 2>/dev/null || pkgs+=(python3-yaml)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        apt-get update -qq
        updated=true
        apt_install "${pkgs[@]}"
    fi
    # A python3 that is not Debian's (pyenv, a venv) does not see python3-yaml.
    if ! python3 -c 'import yaml' 2>/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check pyyaml
        echo "installed pyyaml"
    fi
    # systemd-analyze runs only "if available": try to install it, but a machine where
    # that fails (no systemd package for it) skips the systemd checks instead of failing them.
    if ! command -v systemd-analyze >/dev/null; then
        [ "$updated" = true ] || apt-get update -qq || true
        apt_install systemd || echo "systemd-analyze unavailable: the systemd checks will be skipped"
    fi
}

# --- nginx -----------------------------------------------------------------------------------

check_nginx_syntax() {
    command -v nginx >/dev/null || missing nginx "apt-get install nginx"
    mkdir -p "$tmp/nginx-t"
    nginx -t -q -e stderr -p "$tmp/nginx-t/" -c "$root/deploy/nginx/test-site.conf"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts test-site.conf (on free ports) in front of two stand-in backends that echo what they
# received, then sends requests and checks which backend got each one and with what headers.
check_nginx_routing() {
    command -v nginx >/dev/null || missing nginx "apt-get install nginx"
    local site puma guard conf=$tmp/nginx-run
    site=$(free_port) puma=$(free_port) guard=$(free_port)
    mkdir -p "$conf"
    sed "s/127.0.0.1:8088;/127.0.0.1:$site;/; s/127.0.0.1:3000 /127.0.0.1:$puma /" \
        deploy/nginx/test-site.conf >"$conf/test-site.conf"
    sed "s/127.0.0.1:8080 /127.0.0.1:$guard /" deploy/nginx/inboxguard.conf >"$conf/inboxguard.conf"
    cp deploy/nginx/inboxguard-location.conf "$conf/"
    grep -q "127.0.0.1:$site;" "$conf/test-site.conf"
    grep -q "127.0.0.1:$puma " "$conf/test-site.conf"
    grep -q "127.0.0.1:$guard " "$conf/inboxguard.conf"

    cat >"$tmp/backends.py" <<'EOF'
import hashlib, http.server, json, sys, threading

def handler(name):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            out = json.dumps({
                "backend": name, "method": self.command, "path": self.path,
                "host": self.headers.get("Host"),
                "xff": self.headers.get("X-Forwarded-For"),
                "xfp": self.headers.get("X-Forwarded-Proto"),
                "connection": self.headers.get("Connection"),
                "proxy": self.headers.get("Proxy"),
                "sha256": hashlib.sha256(body).hexdigest(),
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        do_GET = do_POST = _answer
        def log_message(self, *args):
            pass
    return H

servers = [http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler(name))
           for name, port in (("puma", sys.argv[1]), ("inboxguard", sys.argv[2]))]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
EOF
    trap stop_started EXIT
    python3 "$tmp/backends.py" "$puma" "$guard" &
    started_pids+=($!)
    mkdir -p "$conf/prefix"
    nginx -e stderr -p "$conf/prefix/" -c "$conf/test-site.conf" -g 'daemon off;' &
    started_pids+=($!)

    python3 - "$site" "$puma" "$guard" <<'EOF'
import hashlib, json, socket, sys, time, urllib.error, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"

def send(method, path, body=b"", headers=None):
    req = urllib.request.Request(base + path, data=body if method == "POST" else None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None

# Wait until nginx and both backends accept connections.
deadline = time.time() + 10
for port in sys.argv[1:]:
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"nothing listens on 127.0.0.1:{port} (nginx or a stand-in backend)")
            time.sleep(0.1)

cases = [
    ("POST", "/inbox", "inboxguard"),
    ("POST", "/inbox.json", "inboxguard"),
    ("POST", "/users/alice/inbox", "inboxguard"),
    ("POST", "/users/alice/inbox.json", "inboxguard"),
    ("POST", "/ap/users/110000000000000001/inbox", "inboxguard"),
    ("POST", "/ap/users/-42/inbox.json", "inboxguard"),
    ("POST", "/actor/inbox", "inboxguard"),
    ("GET", "/inbox?page=1", "inboxguard"),
    ("GET", "/", "puma"),
    ("GET", "/users/alice", "puma"),
    ("POST", "/users/alice/outbox", "puma"),
    ("POST", "/users/alice/inbox/extra", "puma"),
    ("POST", "/users/a/b/inbox", "puma"),
    ("POST", "/ap/users/abc/inbox", "puma"),
    ("POST", "/inboxes", "puma"),
    ("POST", "/inbox.jsonx", "puma"),
    ("POST", "/api/v1/statuses", "puma"),
]
errors = []
body = b'{"type":"Create","actor":"https://remote.example/users/bob"}'
for method, path, want in cases:
    status, got = send(method, path, body, {"Content-Type": "application/activity+json"})
    if status != 200 or got["backend"] != want:
        errors.append(f"{method} {path}: want {want}, got {status} {got and got['backend']}")
        continue
    if got["path"] != path or got["method"] != method:
        errors.append(f"{method} {path}: backend saw {got['method']} {got['path']}")
    if method == "POST" and got["sha256"] != hashlib.sha256(body).hexdigest():
        errors.append(f"{method} {path}: body changed on the way")

status, got = send("POST", "/users/alice/inbox", body,
                   {"Host": "Mastodon.Test", "Proxy": "http://evil.example", "X-Forwarded-Proto": "https"})
expect = {"host": "mastodon.test", "xff": "127.0.0.1", "xfp": "http", "connection": None, "proxy": None}
for key, want in expect.items():
    if got is None or got[key] != want:
        errors.append(f"inbox headers: {key} = {got and got[key]!r}, want {want!r}")

status, _ = send("POST", "/inbox", b"x" * (3 * 1024 * 1024))
if status != 413:
    errors.append(f"3 MiB inbox body: status {status}, want 413 (client_max_body_size)")

if errors:
    sys.exit("\n".join(errors))
print(f"{len(cases)} paths routed as expected")
EOF
}

# --- prometheus ------------------------------------------------------------------------------

check_promtool_rules() {
    command -v promtool >/dev/null || missing promtool "apt-get install prometheus"
    promtool check rules deploy/prometheus/alerts.yml
}

check_promtool_tests() {
    command -v promtool >/dev/null || missing promtool "apt-get install prometheus"
    promtool test rules deploy/prometheus/alerts.test.yml
}

# --- systemd ---------------------------------------------------------------------------------

# The unit runs /usr/local/bin/inboxguard, which is not installed here, and `verify` reports a
# missing executable as an error. The copy points Exec lines at /bin/true instead; everything
# else is verified as written. `verify` reports unknown keys and bad values as warnings with
# exit status 0, so any output at all counts as a failure.
check_systemd_verify() {
    command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (optional)"; return 77; }
    mkdir -p "$tmp/systemd"
    sed 's#/usr/local/bin/inboxguard#/bin/true#g' deploy/systemd/inboxguard.service \
        >"$tmp/systemd/inboxguard.service"
    local out
    out=$(systemd-analyze verify "$tmp/systemd/inboxguard.service" 2>&1)
    if [ -n "$out" ]; then
        echo "$out"
        return 1
    fi
}

# Exposure score from systemd's own sandboxing review (0 best, 10 worst; the unit scores 1.2
# with systemd 252). 1.5 leaves room for scoring changes between systemd versions yet catches a
# wholesale loosening: without NoNewPrivileges, ProtectSystem, ProtectHome and the syscall
# filter the unit scores 1.8.
check_systemd_security() {
    command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (optional)"; return 77; }
    mkdir -p "$tmp/systemd"
    sed 's#/usr/local/bin/inboxguard#/bin/true#g' deploy/systemd/inboxguard.service \
        >"$tmp/systemd/inboxguard.service"
    systemd-analyze security --offline=yes --threshold=15 --no-pager \
        "$tmp/systemd/inboxguard.service" | tail -n 1
}

# --- grafana and metric names ----------------------------------------------------------------

check_grafana_json() {
    python3 -m json.tool deploy/grafana/inboxguard.json >/dev/null
    python3 - <<'EOF'
import json, sys
d = json.load(open("deploy/grafana/inboxguard.json"))
errors = []
variables = {v["name"]: v for v in d["templating"]["list"]}
if variables.get("DS_PROMETHEUS", {}).get("type") != "datasource":
    errors.append("no datasource variable DS_PROMETHEUS")
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    errors.append("duplicate panel ids")
for p in d["panels"]:
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        errors.append(f"panel {p['title']!r}: datasource is not ${{DS_PROMETHEUS}}")
    if not p.get("targets"):
        errors.append(f"panel {p['title']!r}: no queries")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"panel {p['title']!r} query {t['refId']}: datasource is not ${{DS_PROMETHEUS}}")
        if 'job=~"$job"' not in t["expr"]:
            errors.append(f"panel {p['title']!r} query {t['refId']}: not filtered by $job")
if errors:
    sys.exit("\n".join(errors))
EOF
}

# Every inboxguard_* name used by the alerts and the dashboard must be one the source registers
# (src/metrics.rs, and the modules that register their own; histograms with _bucket, _sum and
# _count), so a renamed metric cannot silently empty a panel or disarm an alert.
check_metric_names() {
    python3 - <<'EOF'
import pathlib, re, sys
src = "".join(p.read_text() for p in sorted(pathlib.Path("src").rglob("*.rs")))
known = set(re.findall(r'"(inboxguard_[a-z0-9_]+)"', src))
histograms = set(re.findall(
    r'(?:HistogramOpts::new|histogram(?:_vec)?)\(\s*"(inboxguard_[a-z0-9_]+)"', src))
if not known or not histograms:
    sys.exit("src: no metric names found")
allowed = known | {h + s for h in histograms for s in ("_bucket", "_sum", "_count")}
errors = []
for path in ("deploy/prometheus/alerts.yml", "deploy/prometheus/alerts.test.yml",
             "deploy/grafana/inboxguard.json"):
    used = set(re.findall(r"\binboxguard_[a-z0-9_]+", open(path).read()))
    for name in sorted(used - allowed):
        errors.append(f"{path}: {name} is not a metric the source registers")
if errors:
    sys.exit("\n".join(errors))
print(f"{len(known)} metrics known")
EOF
}

# --- kubernetes ------------------------------------------------------------------------------

check_kubernetes_yaml() {
    python3 -c 'import yaml' 2>/dev/null || missing PyYAML "python3 -m pip install pyyaml"
    python3 - <<'EOF'
import os, sys, tomllib, yaml
k8s = "deploy/kubernetes"
errors = []
kust = yaml.safe_load(open(os.path.join(k8s, "kustomization.yaml")))
docs = []
for res in kust["resources"]:
    for doc in yaml.safe_load_all(open(os.path.join(k8s, res))):
        if doc is None:
            continue
        for key in ("apiVersion", "kind"):
            if not doc.get(key):
                errors.append(f"{res}: a document has no {key}")
        if not (doc.get("metadata") or {}).get("name"):
            errors.append(f"{res}: a {doc.get('kind')} has no metadata.name")
        if "namespace" in (doc.get("metadata") or {}):
            errors.append(f"{res}: {doc.get('kind')} sets a namespace (manifests are namespace-less)")
        docs.append(doc)
generated = {}
for gen in kust.get("configMapGenerator", []):
    generated[gen["name"]] = [os.path.basename(f) for f in gen["files"]]
    for f in gen["files"]:
        if not os.path.isfile(os.path.join(k8s, f)):
            errors.append(f"configMapGenerator {gen['name']}: {f} missing")
by_kind = {d["kind"]: d for d in docs}
for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"):
    if kind not in by_kind:
        errors.append(f"no {kind} in the kustomization's resources")
if errors:
    sys.exit("\n".join(errors))

dep, svc, sm = by_kind["Deployment"], by_kind["Service"], by_kind["ServiceMonitor"]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
labels = dep["spec"]["template"]["metadata"]["labels"]
cfg = tomllib.load(open(os.path.join(k8s, "inboxguard.toml"), "rb"))

def port_of(addr):
    return int(addr.rsplit(":", 1)[1])

if ports.get("proxy") != port_of(cfg["server"]["listen"]):
    errors.append("containerPort proxy differs from server.listen")
if ports.get("admin") != port_of(cfg["admin"]["listen"]):
    errors.append("containerPort admin differs from admin.listen")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = c.get(probe, {}).get("httpGet", {})
    if get.get("path") != path or get.get("port") != "admin":
        errors.append(f"{probe} must GET {path} on the admin port")
for m in c.get("volumeMounts", []):
    if "subPath" in m or "subPathExpr" in m:
        errors.append(f"volumeMount {m['name']} uses subPath: it would never see ConfigMap updates")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
volumes = {v["name"]: v for v in pod["volumes"]}
# The fields the API accepts for the volume sources and mounts used here (core/v1). An unknown
# field is dropped by a lenient apply, or refused by a strict one (kubectl apply
# --validate=strict, the default since 1.25) only when the manifest reaches a cluster.
volume_fields = {
    "projected": {"defaultMode", "sources"},
    "secret": {"secretName", "items", "defaultMode", "optional"},
    "configMap": {"name", "items", "defaultMode", "optional"},
    "emptyDir": {"medium", "sizeLimit"},
    "persistentVolumeClaim": {"claimName", "readOnly"},
}
mount_fields = {"name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation",
                "recursiveReadOnly"}
for name, v in volumes.items():
    kinds = [k for k in v if k != "name"]
    if len(kinds) != 1 or kinds[0] not in volume_fields:
        errors.append(f"volume {name}: source {kinds} is not one of {sorted(volume_fields)}")
        continue
    for field in sorted(set(v[kinds[0]] or {}) - volume_fields[kinds[0]]):
        errors.append(f"volume {name}: {kinds[0]}.{field} is not a field of {kinds[0]}")
for m in c["volumeMounts"]:
    for field in sorted(set(m) - mount_fields):
        errors.append(f"volumeMount {m['name']}: {field} is not a field of a volumeMount")
    if m["name"] not in volumes:
        errors.append(f"volumeMount {m['name']}: no such volume")
# The config file, the blocklist and the token must be where inboxguard.toml says they are.
args = c.get("args", [])
conf_path = args[args.index("--config") + 1]
conf_dir, conf_file = os.path.split(conf_path)
files_in = {}
for name, path in mounts.items():
    v = volumes[name]
    keys = []
    for src in v.get("projected", {}).get("sources", []):
        if "configMap" in src:
            keys += generated.get(src["configMap"]["name"], [])
    if "secret" in v:
        keys.append("admin-token")
    files_in[path] = keys
def present(path):
    d, f = os.path.split(path)
    return f in files_in.get(d, [])
for what, path in (("--config", conf_path), ("blocklists.path", cfg["blocklists"][0]["path"]),
                   ("admin.token_file", cfg["admin"]["token_file"])):
    if not present(path):
        errors.append(f"{what} {path} is not a file the pod mounts")
secret = volumes["admin-token"]["secret"]["secretName"]
bts = sm["spec"]["endpoints"][0]["bearerTokenSecret"]
if bts["name"] != secret or bts["key"] != "admin-token":
    errors.append("ServiceMonitor bearerTokenSecret differs from the pod's token Secret")
if sm["spec"]["endpoints"][0]["port"] not in {p["name"] for p in svc["spec"]["ports"]}:
    errors.append("ServiceMonitor scrapes a port the Service does not name")
if svc["spec"]["selector"].items() - labels.items():
    errors.append("Service selector does not match the pod labels")
stop = pod["terminationGracePeriodSeconds"]
pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
grace = cfg["server"].get("shutdown_grace_secs", 30)
if stop <= pre + grace:
    errors.append(f"terminationGracePeriodSeconds {stop} <= preStop {pre} + shutdown_grace_secs {grace}")
sc = c["securityContext"]
if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"] and pod["securityContext"].get("runAsNonRoot")):
    errors.append("container securityContext is not locked down")
hpa = by_kind["HorizontalPodAutoscaler"]
if hpa["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
    errors.append("HPA does not target the Deployment")
if errors:
    sys.exit("\n".join(errors))
print(f"{len(docs)} documents, {len(generated)} generated ConfigMaps")
EOF
}

check_kustomize() {
    command -v kubectl >/dev/null || { echo "kubectl not found (optional)"; return 77; }
    kubectl kustomize deploy/kubernetes >"$tmp/rendered.yaml"
    python3 - "$tmp/rendered.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
maps = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
dep = next(d for d in docs if d["kind"] == "Deployment")
refs = [s["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"]
        for s in v.get("projected", {}).get("sources", []) if "configMap" in s]
if sorted(refs) != sorted(maps):
    sys.exit(f"Deployment mounts {refs}, kustomize generated {maps}")
if "inboxguard-blocklists" not in maps or not any(m.startswith("inboxguard-config-") for m in maps):
    sys.exit(f"unexpected ConfigMap names {maps}: config must be hashed, blocklists not")
print(f"{len(docs)} rendered documents")
EOF
}

# --- inboxguard configs ----------------------------------------------------------------------

# What inboxguard's own validation insists on, checked without the binary.
check_configs() {
    python3 - <<'EOF'
import ipaddress, sys, tomllib
errors = []
for path in ("deploy/docker/inboxguard.toml", "deploy/kubernetes/inboxguard.toml"):
    try:
        cfg = tomllib.load(open(path, "rb"))
    except tomllib.TOMLDecodeError as e:
        errors.append(f"{path}: {e}")
        continue
    admin = cfg.get("admin", {})
    host = admin.get("listen", "127.0.0.1:9100").rsplit(":", 1)[0].strip("[]")
    if not ipaddress.ip_address(host).is_loopback and "token_file" not in admin:
        errors.append(f"{path}: admin.listen is not loopback but there is no admin.token_file")
    if admin.get("listen") == cfg["server"]["listen"]:
        errors.append(f"{path}: admin.listen equals server.listen")
    if not cfg["upstream"]["url"].startswith("http://"):
        errors.append(f"{path}: upstream.url must be http://")
    if not cfg.get("blocklists"):
        errors.append(f"{path}: no [[blocklists]]")
if errors:
    sys.exit("\n".join(errors))
EOF
}

# The binary's own `check` on the shipped configs, with their absolute paths pointed into a
# scratch directory holding this repository's blocklist and a token file.
check_configs_with_binary() {
    if [ -z "${INBOXGUARD_BIN:-}" ]; then
        echo "set INBOXGUARD_BIN to a built inboxguard to run it"
        return 77
    fi
    local cfg out
    for cfg in deploy/docker/inboxguard.toml deploy/kubernetes/inboxguard.toml; do
        out=$tmp/bin-check/$(basename "$(dirname "$cfg")")
        mkdir -p "$out"
        cp "$(dirname "$cfg")/blocklist.csv" "$out/blocklist.csv"
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$out/admin-token"
        sed -e "s#\"/etc/inboxguard/blocklist.csv\"#\"$out/blocklist.csv\"#" \
            -e "s#\"/run/secrets/[^\"]*\"#\"$out/admin-token\"#" "$cfg" >"$out/inboxguard.toml"
        grep -q "$out/blocklist.csv" "$out/inboxguard.toml"
        grep -q "$out/admin-token" "$out/inboxguard.toml"
        "$INBOXGUARD_BIN" check --config "$out/inboxguard.toml"
    done
}

# --- docker ----------------------------------------------------------------------------------

check_dockerfile() {
    if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
        echo "no Docker daemon reachable"
        return 77
    fi
    docker build --check -f deploy/Dockerfile .
}

# ---------------------------------------------------------------------------------------------

started=$SECONDS
if [ "$ci" = true ]; then
    run "install tools (CI=true)" install_tools
fi
run "nginx -t deploy/nginx/test-site.conf" check_nginx_syntax
run "nginx routes inbox paths to inboxguard, the rest to Puma" check_nginx_routing
run "promtool check rules deploy/prometheus/alerts.yml" check_promtool_rules
run "promtool test rules deploy/prometheus/alerts.test.yml" check_promtool_tests
run "systemd-analyze verify deploy/systemd/inboxguard.service" check_systemd_verify
run "systemd-analyze security: exposure at most 1.5" check_systemd_security
run "grafana dashboard JSON" check_grafana_json
run "metric names exist in the source" check_metric_names
run "kubernetes manifests" check_kubernetes_yaml
run "kubectl kustomize deploy/kubernetes" check_kustomize
run "container and kubernetes inboxguard.toml" check_configs
run "inboxguard check on the shipped configs" check_configs_with_binary
run "docker build --check deploy/Dockerfile" check_dockerfile

echo "$check_no checks, $failures failed, $((SECONDS - started)) s"
[ "$failures" -eq 0 ]
