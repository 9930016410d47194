#!/usr/bin/env bash
# Deployment checks for pipeserve: Helm chart, Kubernetes and CRD schemas (KEDA and KServe vendored),
# the KServe runtime (deploy/kserve/), Dockerfile, alert rules and their unit tests, Grafana
# dashboard, and live runs of the real server binary: image, Prometheus (every query, and the exact
# autoscaling queries of KEDA and prometheus-adapter), the rendered Deployment kubelet-style, the
# hub paths (slow load, init container, offline), the KServe runtime's container as KServe runs it,
# and the /docs page in a headless Chromium.
#
#   bash ci/deploy-checks.sh
#
# Environment:
#   PIPESERVE_BIN     server binary for the live checks (default target/release/pipeserve; built
#                     with `cargo build --release --locked` when that default is missing)
#   PIPESERVE_IMAGE_BIN  binary baked into the image in (a) (default PIPESERVE_BIN); one built with
#                     the `dnnl` feature is staged with the libdnnl.so.3 it links, as the Dockerfile's
#                     own build ships it
#   SKIP_IMAGE=1      skip (a): podman image from a local mmdebstrap base + the host binary
#   SKIP_IMAGE_MODEL=1  skip only the runtime-model (baked model) build within (a)
#   SKIP_PROMETHEUS=1 skip (b): a real Prometheus scraping the server; every dashboard/alert query
#   SKIP_CHART_RUN=1  skip (c): the server run as the rendered Deployment says, kubelet-style
#   SKIP_HUB=1        skip (d): slow model load from a local fake hub, --download-only init container,
#                     offline load from its cache
#   SKIP_KSERVE=1     skip (e): the server run with the KServe runtime's args and env
#   SKIP_BROWSER=1    skip (f): /docs driven in headless Chromium (apt's chromium, installed when missing)
#   SCREENSHOT=PATH   (f) also saves a screenshot of /docs there (docs/docs-page.png is one)
#   SKIP_LIVE=1       skip all live checks
#   KUBE_VERSIONS     Kubernetes versions to validate against (default "1.30.0 1.37.0")
#
# Tools are installed idempotently into .tools/ (git-ignored; see ci/tools.sh); caches stay in
# the repository. podman/buildah/mmdebstrap/runc come from apt when missing (root needed).
# Every server and Prometheus started here binds 127.0.0.1 and is stopped on exit.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export REPO
# shellcheck source=ci/tools.sh
source ci/tools.sh
OUT="$TOOLS/out"
CHART=helm/pipeserve
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30.0 1.37.0}"
DEFAULT_BIN="$REPO/target/release/pipeserve"
PIPESERVE_BIN="$(realpath -m "${PIPESERVE_BIN:-$DEFAULT_BIN}")"
PIPESERVE_IMAGE_BIN="$(realpath -m "${PIPESERVE_IMAGE_BIN:-$PIPESERVE_BIN}")"
MODEL_DIR="$REPO/models/all-MiniLM-L6-v2"
export CONTAINERS_CONF="$TOOLS/containers/containers.conf"
export CONTAINERS_STORAGE_CONF="$TOOLS/containers/storage.conf"
IMAGE=localhost/pipeserve:ci
BASE_TAR="$TOOLS/images/bookworm-slim.tar"
# minbase without docs, man pages and locales: what debian:bookworm-slim leaves out.
SLIM_OPTS=(--variant=minbase --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*')

FAILED=() PASSED=() SKIPPED=() TIMINGS=()
PIDS=() CONTAINERS=()

pass() { printf '\033[32mPASS\033[0m %s\n' "$*"; PASSED+=("$*"); }
fail() { printf '\033[31mFAIL\033[0m %s\n' "$*"; FAILED+=("$*"); }
skip() { printf 'SKIP %s\n' "$*"; SKIPPED+=("$*"); }
# run NAME CMD...: PASS/FAIL on CMD's exit status, its output indented.
run() {
  local name="$1"; shift
  local log; log="$(mktemp "$OUT/log.XXXXXX")"
  # tail reads the file itself: `sed | tail -n 0` would end in SIGPIPE (exit 141 under pipefail).
  if "$@" >"$log" 2>&1; then tail -n "${SHOW_LINES:-8}" "$log" | sed 's/^/    /'; pass "$name"
  else tail -n 60 "$log" | sed 's/^/    /'; fail "$name"; fi
  rm -f "$log"
}
stage() { STAGE_NAME="$1"; STAGE_T0=$SECONDS; printf '\n== %s\n' "$1"; }
stage_end() { TIMINGS+=("$(printf '%-34s %4ss' "$STAGE_NAME" $((SECONDS - STAGE_T0)))"); }

# stop_pid PID [SECONDS]: SIGTERM, wait (bounded), then SIGKILL. Returns the exit status.
stop_pid() {
  local pid="$1" i
  # Already gone: report how it ended.
  kill "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
  for ((i = 0; i < ${2:-40} * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { echo "pid $pid ignored SIGTERM for ${2:-40}s: SIGKILL"; kill -9 "$pid"; }
  wait "$pid" 2>/dev/null
}
cleanup() {
  local pid c
  # Newest first: the scraper before the server it scrapes.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 5; done
  for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  return 0
}
trap cleanup EXIT

# import_image TAR REF: podman import into the repo-local store, again whenever TAR changes
# (the image is labelled with the tarball's checksum).
import_image() {
  local sum; sum="$(cksum <"$1" | cut -d' ' -f1)"
  [[ "$(podman image inspect -f '{{index .Labels "ci.tar-sum"}}' "$2" 2>/dev/null)" == "$sum" ]] && return 0
  SHOW_LINES=0 run "podman import $(basename "$1") as $2 (repo-local storage)" \
    podman import -q --change "LABEL ci.tar-sum=$sum" --change 'CMD ["bash"]' "$1" "$2"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL SECONDS: until URL answers 200.
wait_http() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]] && return 0
    sleep 0.25
  done
  return 1
}
# check_image_links CONTAINER: the binary's libraries all resolve inside the container, libdnnl
# from beside the binary (ldd is given the real path: it takes `$ORIGIN` from the path it is
# given, where an exec takes it from /proc/self/exe).
check_image_links() {
  local links; links="$(podman exec "$1" ldd /usr/local/lib/pipeserve/pipeserve)" || return 1
  echo "$links" | grep -E 'dnnl|gomp'
  ! grep -q 'not found' <<<"$links" && grep -q '^\s*libdnnl\.so\.3 => /usr/local/lib/pipeserve/libdnnl\.so\.3' <<<"$links"
}

# check_info URL: /info names a dtype and a GEMM.
check_info() {
  curl -fsS --max-time 10 "$1/info" \
    | python3 -c 'import json,sys; v=json.load(sys.stdin); assert v["dtype"] and v["gemm"], v; print("dtype", v["dtype"] + ", gemm", v["gemm"])'
}

# check_embedding URL: one inference on /embed must return [[384 floats]].
check_embedding() {
  curl -fsS --max-time 30 -X POST "$1/embed" -H 'content-type: application/json' -d '{"inputs":"hello"}' \
    | python3 -c 'import json,sys; v=json.load(sys.stdin); assert len(v)==1 and len(v[0])==384, v; print(f"embedding: {len(v[0])} floats, first {v[0][0]:.4f}")'
}

mkdir -p "$OUT/rendered" "$TOOLS/bin"
rm -f "$OUT"/rendered/*.yaml

# ---------------------------------------------------------------------------------------------
stage "tools"
if install_static_tools >"$OUT/tools.log" 2>&1; then pass "tools installed in .tools/"; else cat "$OUT/tools.log"; fail "tools"; fi
tools_path
stage_end

# ---------------------------------------------------------------------------------------------
stage "helm lint + template"
SCENARIOS=("$CHART/ci/default-values.yaml")
for f in "$CHART"/ci/*-values.yaml; do [[ "$f" == "${SCENARIOS[0]}" ]] || SCENARIOS+=("$f"); done
for f in "${SCENARIOS[@]}"; do
  n="$(basename "$f" -values.yaml)"
  run "helm lint --strict ($n)" helm lint --strict "$CHART" -f "$f"
  SHOW_LINES=0 run "helm template ($n)" bash -c "helm template ci $CHART -n pipeserve -f $f > $OUT/rendered/$n.yaml"
done
SHOW_LINES=0 run "helm template (no values file)" bash -c "helm template ci $CHART > $OUT/rendered/no-values.yaml"
# NOTES.txt is only rendered by install/upgrade, which need a cluster: render it through a copy of
# the chart where it is wrapped as a named template.
render_notes() {
  local copy="$OUT/notes-chart" f
  rm -rf "$copy"; cp -r "$CHART" "$copy"
  { echo '{{- define "ci.notes" -}}'; cat "$copy/templates/NOTES.txt"; echo '{{- end }}'; } >"$copy/templates/_ci_notes.tpl"
  rm "$copy/templates/NOTES.txt"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {notes: {{ include "ci.notes" . | toJson }}}\n' \
    >"$copy/templates/ci-notes.yaml"
  for f in "${SCENARIOS[@]}"; do
    helm template ci "$copy" -n pipeserve -f "$f" --show-only templates/ci-notes.yaml >"$OUT/notes.yaml" || return 1
    # The KServe runtime scenario's notes tell how to create an InferenceService that names it.
    python -c 'import sys,yaml; n=yaml.safe_load(open(sys.argv[1]))["data"]["notes"]
want = ["InferenceService", "runtime: pipeserve", "/v2/models/minilm/infer"] if sys.argv[2] == "kserve" else ["rollout status", "helm test"]
assert all(w in n for w in want), (want, n)' "$OUT/notes.yaml" "$(basename "$f" -values.yaml)" || return 1
  done
  python -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["notes"])' "$OUT/notes.yaml"
}
SHOW_LINES=30 run "NOTES.txt renders for every scenario (last one shown)" render_notes
# The guards must bite: unknown keys (schema) and a grace period shorter than the drain.
if helm template ci "$CHART" --set bogusKey=1 >/dev/null 2>&1; then fail "schema rejects unknown keys"; else pass "schema rejects unknown keys"; fi
if helm template ci "$CHART" --set shutdown.terminationGracePeriodSeconds=10 >/dev/null 2>&1; then
  fail "grace period below preStop+drain+timeout is refused"; else pass "grace period below preStop+drain+timeout is refused"; fi
# refused KEY=VALUE... -- WANT: the render fails and its error names WANT.
refused() {
  local want="${*: -1}" args=() a out
  for a in "${@:1:$#-2}"; do args+=(--set "$a"); done
  if out="$(helm template ci "$CHART" "${args[@]}" 2>&1)"; then echo "rendered without error"; return 1; fi
  echo "$out" | grep -m1 -F -- "$want" || { echo "$out" | head -5; return 1; }
}
SHOW_LINES=1 run "shutdown.timeoutSeconds < batching.requestTimeout is refused, with the reason" \
  refused shutdown.timeoutSeconds=20 batching.requestTimeout=30s -- "is shorter than batching.requestTimeout=30s"
SHOW_LINES=1 run "a digest glued to image.tag is refused (image.digest instead)" \
  refused "image.tag=0.1.0@sha256:$(printf '0%.0s' {1..64})" -- "image.tag"
SHOW_LINES=1 run "autoscaling.minReplicas > maxReplicas is refused" \
  refused autoscaling.enabled=true autoscaling.minReplicas=5 autoscaling.maxReplicas=2 -- "is above autoscaling.maxReplicas"
SHOW_LINES=1 run "kserve.runtime.enabled with the chart's own autoscaling is refused, with the reason" \
  refused kserve.runtime.enabled=true autoscaling.enabled=true -- "does not apply with kserve.runtime.enabled"
SHOW_LINES=1 run "chart labels cannot be overridden by podLabels/commonLabels" \
  refused "commonLabels.app\.kubernetes\.io/name=x" -- "commonLabels"
stage_end

# ---------------------------------------------------------------------------------------------
stage "kubernetes-validate + CRD schemas"
for f in "$OUT"/rendered/*.yaml; do
  for v in $KUBE_VERSIONS; do
    # CRD kinds have no schema in kubernetes-validate (a WARN); validate_crds.mjs covers them.
    SHOW_LINES=3 run "kubernetes-validate --strict -k $v ($(basename "$f" .yaml))" \
      kubernetes-validate --strict --quiet -k "$v" "$f"
  done
done
SHOW_LINES=8 run "ServiceMonitor/PrometheusRule (operator CRDs), ScaledObject (vendored KEDA CRD), deploy/kserve (vendored KServe CRDs)" \
  env TOOLS_NODE_MODULES="$TOOLS/node/node_modules" node ci/validate_crds.mjs "$OUT"/rendered/*.yaml deploy/kserve/*.yaml
SHOW_LINES=2 run "KServe runtime: ClusterServingRuntime = ServingRuntime, /mnt/models, {{.Name}}, ports, probes, metrics annotations" \
  python ci/kserve_check.py config deploy/kserve
# The chart's runtime (kserve.runtime.enabled), namespaced and cluster-wide, with deploy/kserve's
# InferenceServices: the same config check here, and the live run in (e).
KSERVE_CHART="$OUT/kserve-chart"
kserve_chart_render() {
  rm -rf "$KSERVE_CHART"; mkdir -p "$KSERVE_CHART"
  helm template ci "$CHART" -n models -f "$CHART/ci/kserve-values.yaml" >"$KSERVE_CHART/servingruntime.yaml" || return 1
  helm template ci "$CHART" -n models -f "$CHART/ci/kserve-values.yaml" --set kserve.runtime.clusterScoped=true \
    >"$KSERVE_CHART/clusterservingruntime.yaml" || return 1
  cp deploy/kserve/inferenceservice*.yaml "$KSERVE_CHART/"
  TOOLS_NODE_MODULES="$TOOLS/node/node_modules" node ci/validate_crds.mjs "$KSERVE_CHART"/*.yaml \
    && python ci/kserve_check.py config "$KSERVE_CHART"
}
SHOW_LINES=3 run "KServe runtime from the chart (kserve-values, namespaced + clusterScoped): CRD schemas, same config checks" \
  kserve_chart_render
run "prometheus-adapter rule: strict config fields, values file = rendered ConfigMap" \
  python ci/autoscaling_check.py config --adapter-values "$CHART/files/prometheus-adapter-values.yaml" \
    --rendered "$OUT"/rendered/*.yaml
SHOW_LINES=20 run "chart invariants (labels, security, probes, drain, image refs, autoscaling, rules)" \
  python ci/chart_invariants.py --alerts "$CHART/files/alerts.yml" --chart "$CHART" --namespace pipeserve "$OUT"/rendered/*.yaml
stage_end

# ---------------------------------------------------------------------------------------------
stage "hadolint"
run "hadolint Dockerfile" hadolint --config .hadolint.yaml Dockerfile
stage_end

# ---------------------------------------------------------------------------------------------
stage "promtool rules"
if [[ "$(readlink -f dashboards/alerts.yml)" == "$(readlink -f "$CHART/files/alerts.yml")" ]]; then
  pass "dashboards/alerts.yml is the chart's files/alerts.yml (one copy)"
else fail "dashboards/alerts.yml and $CHART/files/alerts.yml are different files"; fi
if [[ "$(readlink -f dashboards/pipeserve.json)" == "$(readlink -f "$CHART/files/pipeserve.json")" ]]; then
  pass "dashboards/pipeserve.json is the chart's files/pipeserve.json (one copy)"
else fail "dashboards/pipeserve.json and $CHART/files/pipeserve.json are different files"; fi
run "promtool check rules" promtool check rules dashboards/alerts.yml
SHOW_LINES=4 run "promtool test rules (target down/absent, burn rates above and below, probes excluded)" \
  promtool test rules dashboards/alerts_test.yml dashboards/alerts_test_3d.yml
run "dashboard + alert PromQL parses" python ci/promql_check.py --dashboard dashboards/pipeserve.json \
  --alerts dashboards/alerts.yml --promtool "$(command -v promtool)"
stage_end

# ---------------------------------------------------------------------------------------------
stage "grafana dashboard typecheck"
run "dashboard JSON vs @grafana/schema (tsc --strict)" \
  python ci/dashboard_typecheck.py dashboards/pipeserve.json --node-dir "$TOOLS/node"
# The copy Grafana's sidecar gets: the chart's ConfigMap (SLO constants from the monitoring scenario).
python - "$OUT/rendered/monitoring.yaml" "$OUT/dashboard-configmap.json" <<'EOF'
import sys, yaml
cm = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
open(sys.argv[2], "w").write(cm["data"]["pipeserve.json"])
EOF
run "dashboard ConfigMap (monitoring scenario) vs @grafana/schema, its PromQL parses" bash -c \
  "python ci/dashboard_typecheck.py $OUT/dashboard-configmap.json --node-dir $TOOLS/node && python ci/promql_check.py --dashboard $OUT/dashboard-configmap.json --alerts dashboards/alerts.yml --promtool $(command -v promtool)"
stage_end

# ---------------------------------------------------------------------------------------------
# Live checks.
# ---------------------------------------------------------------------------------------------
[[ "${SKIP_LIVE:-0}" == 1 ]] && SKIP_IMAGE=1 SKIP_PROMETHEUS=1 SKIP_CHART_RUN=1 SKIP_HUB=1 SKIP_KSERVE=1 SKIP_BROWSER=1
LIVE_READY=1
if [[ "${SKIP_IMAGE:-0}" != 1 || "${SKIP_PROMETHEUS:-0}" != 1 || "${SKIP_CHART_RUN:-0}" != 1 || "${SKIP_HUB:-0}" != 1 \
   || "${SKIP_KSERVE:-0}" != 1 || "${SKIP_BROWSER:-0}" != 1 ]]; then
  stage "live prerequisites (binary, model)"
  if [[ ! -x "$PIPESERVE_BIN" && "$PIPESERVE_BIN" == "$DEFAULT_BIN" ]]; then
    run "cargo build --release --locked" cargo build --release --locked
  fi
  if [[ -x "$PIPESERVE_BIN" ]]; then pass "server binary $PIPESERVE_BIN"; else fail "server binary $PIPESERVE_BIN missing"; LIVE_READY=0; fi
  # The cpu runtime image carries glibc, libgcc, libstdc++ and libgomp; libdnnl.so.3 (feature
  # dnnl) travels next to the binary. Anything else would exit 127 in it: say so here instead of
  # as a failed container.
  if [[ "${SKIP_IMAGE:-0}" != 1 ]]; then
    if [[ -x "$PIPESERVE_IMAGE_BIN" ]]; then
      foreign="$(ldd "$PIPESERVE_IMAGE_BIN" | awk '{print $1}' \
        | grep -Ev '^(linux-vdso|/lib64/ld-linux|ld-linux)|^lib(c|m|gcc_s|stdc\+\+|pthread|dl|rt|gomp)\.so|^libdnnl\.so\.3$' || true)"
      if [[ -z "$foreign" ]]; then pass "image binary needs only glibc/libgcc/libstdc++/libgomp, and libdnnl shipped beside it"
      else fail "image binary links libraries the cpu runtime image lacks: $(echo $foreign)"; LIVE_READY=0; fi
    else fail "image binary $PIPESERVE_IMAGE_BIN missing"; LIVE_READY=0; fi
  fi
  run "models/all-MiniLM-L6-v2 (scripts/fetch_models.py)" python3 scripts/fetch_models.py --only all-MiniLM-L6-v2
  [[ -f "$MODEL_DIR/config.json" ]] || LIVE_READY=0
  stage_end
fi

# (a) Image: local base image, host-built binary, run it as the chart would (non-root, read-only).
if [[ "${SKIP_IMAGE:-0}" == 1 ]]; then skip "(a) container image"
elif [[ $LIVE_READY != 1 ]]; then fail "(a) container image: no binary or model"
else
  stage "(a) container image (podman)"
  run "podman, buildah, mmdebstrap, runc present" install_system_packages
  mkdir -p "$TOOLS/containers" "$TOOLS/images"
  printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' >"$CONTAINERS_CONF"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$TOOLS/containers/storage" "$TOOLS/containers/run" >"$CONTAINERS_STORAGE_CONF"
  if [[ ! -s "$BASE_TAR" ]]; then
    run "mmdebstrap bookworm slim (the debian:bookworm-slim stand-in)" \
      mmdebstrap "${SLIM_OPTS[@]}" --mode=root bookworm "$BASE_TAR.tmp.tar" http://deb.debian.org/debian
    mv -f "$BASE_TAR.tmp.tar" "$BASE_TAR"
  else pass "base image tarball cached ($BASE_TAR)"; fi
  import_image "$BASE_TAR" docker.io/library/debian:bookworm-slim
  # A staged build context: the sources the Dockerfile copies, the binary, and the libdnnl.so.3
  # it links if any (the .dockerignore admits only those two files of target/).
  CTX="$OUT/image-context"; rm -rf "$CTX"; mkdir -p "$CTX/target/release" "$CTX/scripts"
  cp Dockerfile .dockerignore Cargo.toml Cargo.lock "$CTX/"; cp -r src "$CTX/"
  cp scripts/fetch_models.py scripts/mkl.sh scripts/onednn.sh "$CTX/scripts/"
  cp "$PIPESERVE_IMAGE_BIN" "$CTX/target/release/pipeserve"
  dnnl_lib="$(ldd "$PIPESERVE_IMAGE_BIN" | awk '$1 == "libdnnl.so.3" {print $3}')"
  [[ -n "$dnnl_lib" ]] && cp -L "$dnnl_lib" "$CTX/target/release/libdnnl.so.3"
  # buildah 1.28 resolves ARG-named stages only from --build-arg, so both are passed explicitly.
  SHOW_LINES=3 run "podman build (BINARY_SOURCE=prebuilt, VARIANT=cpu, --pull=never)" \
    podman build --pull=never --network host --build-arg VARIANT=cpu --build-arg BINARY_SOURCE=prebuilt \
    -t "$IMAGE" -f Dockerfile "$CTX"
  if podman image exists "$IMAGE"; then
    user="$(podman image inspect -f '{{.Config.User}}' "$IMAGE")"
    size="$(podman image inspect -f '{{.Size}}' "$IMAGE")"
    if [[ "$user" == 65532:65532 ]]; then pass "image runs as $user ($((size / 1000000)) MB)"; else fail "image user is '$user'"; fi
    port="$(free_port)"; name="pipeserve-ci-$$"
    # As the chart runs it: non-root, read-only root, no capabilities, writable /tmp only.
    if podman run -d --name "$name" -p "127.0.0.1:$port:8000" --read-only --tmpfs /tmp:rw,size=256m \
         --cap-drop ALL --security-opt no-new-privileges -v "$REPO/models:/models:ro" \
         -e PIPESERVE_MODEL=/models/all-MiniLM-L6-v2 -e RUST_LOG=info "$IMAGE" >/dev/null; then
      CONTAINERS+=("$name")
      if wait_http "http://127.0.0.1:$port/health/ready" 90; then pass "(a) container /health/ready = 200"
      else podman logs "$name" 2>&1 | tail -20; fail "(a) container /health/ready"; fi
      run "(a) container inference /embed" check_embedding "http://127.0.0.1:$port"
      SHOW_LINES=1 run "(a) container /info (dtype, GEMM)" check_info "http://127.0.0.1:$port"
      if [[ -n "$dnnl_lib" ]]; then
        SHOW_LINES=2 run "(a) libdnnl.so.3 and libgomp resolve in the image, libdnnl beside the binary" check_image_links "$name"
      fi
      podman stop -t 35 "$name" >/dev/null 2>&1
      rc="$(podman inspect -f '{{.State.ExitCode}}' "$name")"
      if [[ "$rc" == 0 ]]; then pass "(a) container exits 0 on SIGTERM (podman stop)"
      else podman logs "$name" 2>&1 | tail -10; fail "(a) container exit code $rc on SIGTERM"; fi
      podman rm -f "$name" >/dev/null 2>&1
    else fail "(a) podman run"; fi
  fi
  # The baked-model target: fetch_models.py runs inside the build on a local python base (the
  # python image cannot be pulled here). The host's CA store is mounted for that RUN only, for
  # sites where PyPI is reached through a TLS-inspecting proxy.
  if [[ "${SKIP_IMAGE_MODEL:-0}" == 1 ]]; then skip "(a) runtime-model target"
  else
    PY_TAR="$TOOLS/images/bookworm-python-slim.tar"
    if [[ ! -s "$PY_TAR" ]]; then
      run "mmdebstrap bookworm + python3-pip (the python image stand-in)" mmdebstrap "${SLIM_OPTS[@]}" --mode=root \
        --include=python3,python3-pip,ca-certificates bookworm "$PY_TAR.tmp.tar" http://deb.debian.org/debian
      mv -f "$PY_TAR.tmp.tar" "$PY_TAR"
    fi
    import_image "$PY_TAR" localhost/pipeserve-ci/python:bookworm
    SHOW_LINES=3 run "podman build --target runtime-model (model baked in by fetch_models.py)" \
      podman build --pull=never --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
      --build-arg VARIANT=cpu --build-arg BINARY_SOURCE=prebuilt \
      --build-arg PYTHON_IMAGE=localhost/pipeserve-ci/python:bookworm --target runtime-model \
      -t "$IMAGE-model" -f Dockerfile "$CTX"
    port="$(free_port)"; name="pipeserve-ci-model-$$"
    if podman image exists "$IMAGE-model" && podman run -d --name "$name" -p "127.0.0.1:$port:8000" --read-only \
         --tmpfs /tmp:rw,size=64m --cap-drop ALL --security-opt no-new-privileges "$IMAGE-model" >/dev/null; then
      CONTAINERS+=("$name")
      if wait_http "http://127.0.0.1:$port/health/ready" 90; then pass "(a) runtime-model /health/ready = 200 (nothing mounted)"
      else podman logs "$name" 2>&1 | tail -20; fail "(a) runtime-model /health/ready"; fi
      run "(a) runtime-model inference /embed" check_embedding "http://127.0.0.1:$port"
      podman rm -f -t 35 "$name" >/dev/null 2>&1
    else fail "(a) runtime-model image"; fi
  fi
  stage_end
fi

# (b) Prometheus scrapes the server under load; every dashboard and alert query returns data.
if [[ "${SKIP_PROMETHEUS:-0}" == 1 ]]; then skip "(b) Prometheus"
elif [[ $LIVE_READY != 1 ]]; then fail "(b) Prometheus: no binary or model"
else
  stage "(b) Prometheus scrape + queries"
  sport="$(free_port)"; pport="$(free_port)"; pdir="$(mktemp -d "$OUT/prom.XXXXXX")"
  # A small queue so that the burst below sheds some requests (shed panels show real data).
  PIPESERVE_MODEL="$MODEL_DIR" PIPESERVE_HOST=127.0.0.1 PIPESERVE_PORT="$sport" PIPESERVE_MAX_QUEUE=48 \
    RUST_LOG=info "$PIPESERVE_BIN" >"$pdir/server.log" 2>&1 &
  SERVER_PID=$!; PIDS+=($!)
  cp dashboards/alerts.yml "$pdir/alerts.yml"
  cat >"$pdir/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: pipeserve
    static_configs:
      # namespace/pod stand in for the labels a ServiceMonitor adds in a cluster.
      - targets: ["127.0.0.1:$sport"]
        labels: {namespace: ci, pod: pipeserve-ci-0}
EOF
  prometheus --config.file="$pdir/prometheus.yml" --storage.tsdb.path="$pdir/data" \
    --web.listen-address="127.0.0.1:$pport" >"$pdir/prometheus.log" 2>&1 &
  PROM_PID=$!; PIDS+=($!)
  if wait_http "http://127.0.0.1:$sport/health/ready" 60; then
    pass "(b) server ready"
    curl -s "http://127.0.0.1:$sport/metrics" >"$pdir/metrics.txt"
    run "(b) promtool check metrics (exposition lint)" bash -c "promtool check metrics < $pdir/metrics.txt"
    wait_http "http://127.0.0.1:$pport/-/ready" 30 || fail "(b) prometheus did not start"
    SHOW_LINES=12 run "(b) load: 20s at concurrency 12 (loadgen)" python ci/loadgen.py "http://127.0.0.1:$sport" --seconds 20 --concurrency 12
    sleep 3  # two more scrapes after the load
    SHOW_LINES=80 run "(b) every dashboard and alert query returns data" python ci/promql_check.py \
      --dashboard dashboards/pipeserve.json --alerts dashboards/alerts.yml \
      --promtool "$(command -v promtool)" --prometheus "http://127.0.0.1:$pport"
    run "(b) alert rules loaded and healthy in Prometheus" python - "http://127.0.0.1:$pport" <<'EOF'
import json, sys, urllib.request
rules = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/rules"))["data"]["groups"]
bad = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r.get("health") != "ok"]
print(f"{sum(len(g['rules']) for g in rules)} rules, unhealthy: {bad}")
sys.exit(1 if bad or not rules else 0)
EOF
    # The chart's own objects for this scrape: release "pipeserve" in namespace "ci" is the job and
    # namespace Prometheus gives the server here (a ServiceMonitor's job is the Service name).
    helm template pipeserve "$CHART" -n ci -f "$CHART/ci/keda-values.yaml" --show-only templates/scaledobject.yaml \
      >"$pdir/scaledobject.yaml"
    helm template pipeserve "$CHART" -n ci -f "$CHART/ci/monitoring-values.yaml" --show-only templates/prometheusrule.yaml \
      | python -c 'import sys,yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout)' >"$pdir/chart-rules.yml"
    SHOW_LINES=40 run "(b) the PrometheusRule as rendered for this release: every expression evaluates with data" \
      python ci/promql_check.py --dashboard dashboards/pipeserve.json --alerts "$pdir/chart-rules.yml" \
        --promtool "$(command -v promtool)" --prometheus "http://127.0.0.1:$pport"
    # Autoscaling: steady load for a minute while the exact KEDA and adapter queries are checked.
    python ci/loadgen.py "http://127.0.0.1:$sport" --seconds 66 --concurrency 6 >"$pdir/load-autoscale.txt" 2>&1 &
    LOAD_PID=$!
    SHOW_LINES=12 run "(b) KEDA trigger query and adapter rule return the queue depth the server reports" \
      python ci/autoscaling_check.py live --server "http://127.0.0.1:$sport" --prometheus "http://127.0.0.1:$pport" \
        --scaledobject "$pdir/scaledobject.yaml" --adapter-values "$CHART/files/prometheus-adapter-values.yaml" \
        --namespace ci --pod pipeserve-ci-0 --seconds 62
    wait "$LOAD_PID"
  else tail -20 "$pdir/server.log"; fail "(b) server not ready"; fi
  stop_pid "$PROM_PID" 10
  stop_pid "$SERVER_PID" 40; rc=$?
  if [[ $rc == 0 ]]; then pass "(b) server exits 0 on SIGTERM"; else tail -5 "$pdir/server.log"; fail "(b) server exit status $rc on SIGTERM"; fi
  PIDS=()
  stage_end
fi

# (c) The rendered Deployment, run and terminated the way the kubelet does.
if [[ "${SKIP_CHART_RUN:-0}" == 1 ]]; then skip "(c) chart-driven run"
elif [[ $LIVE_READY != 1 ]]; then fail "(c) chart-driven run: no binary or model"
else
  stage "(c) chart-driven run (kubelet_sim)"
  SHOW_LINES=40 run "(c) probes, helm test script, preStop+SIGTERM under load: all 200, exit 0" \
    python ci/kubelet_sim.py "$OUT/rendered/hostpath.yaml" --bin "$PIPESERVE_BIN" \
      --host-path-map "/var/lib/pipeserve/models=$REPO/models" --log "$OUT/kubelet-sim-server.log"
  stage_end
fi

# (d) The hub paths against a local fake hub that is private (token) and slow (the weights arrive
# after HUB_DELAY seconds): the server answering while it loads, the --download-only init
# container, and the server loading offline from the cache that container filled. These need the
# server to listen during load and to support --download-only / HF_HUB_OFFLINE (issue 13).
HUB_DELAY=6
if [[ "${SKIP_HUB:-0}" == 1 ]]; then skip "(d) hub paths (SKIP_HUB=1)"
elif [[ $LIVE_READY != 1 ]]; then fail "(d) hub paths: no binary or model"
else
  stage "(d) hub: slow load, init container, offline"
  hdir="$(mktemp -d "$OUT/hub.XXXXXX")"
  python ci/fake_hub.py "$MODEL_DIR" --token hf_ci_secret --delay "$HUB_DELAY" --port-file "$hdir/port" \
    >"$hdir/hub.log" 2>&1 &
  HUB_PID=$!; PIDS+=($!)
  for _ in $(seq 50); do [[ -s "$hdir/port" ]] && break; sleep 0.1; done
  helm template ci "$CHART" -n pipeserve -f "$CHART/ci/initcontainer-values.yaml" \
    --set model.hub.endpoint="http://127.0.0.1:$(cat "$hdir/port")" >"$hdir/rendered.yaml"
  HUB_SIM=(python ci/hub_sim.py --bin "$PIPESERVE_BIN" --hub-log "$hdir/hub.log" --secret hf-token/token=hf_ci_secret
    --work "$hdir" --delay "$HUB_DELAY")
  SHOW_LINES=12 run "(d) slow model load: live 200, ready 503, /metrics (loading gauges) while loading; ready after" \
    "${HUB_SIM[@]:0:2}" slow-load "$hdir/rendered.yaml" "${HUB_SIM[@]:2}"
  SHOW_LINES=4 run "(d) init container: server image with --download-only fills the cache, exits 0" \
    "${HUB_SIM[@]:0:2}" init "$hdir/rendered.yaml" "${HUB_SIM[@]:2}"
  SHOW_LINES=6 run "(d) server on the prefilled cache: ready, inference, no hub request" \
    "${HUB_SIM[@]:0:2}" offline "$hdir/rendered.yaml" "${HUB_SIM[@]:2}"
  # (ci/tools.sh leaves `set -e` on: a non-zero status here would end the script.)
  stop_pid "$HUB_PID" 5 || true
  PIDS=()
  stage_end
fi

# (e) The KServe runtime's container, as KServe's pod runs it once the storage initializer filled
# /mnt/models. The runtime passes --grpc-port: a binary without the gRPC server cannot run it.
if [[ "${SKIP_KSERVE:-0}" == 1 ]]; then skip "(e) KServe runtime run"
elif [[ $LIVE_READY != 1 ]]; then fail "(e) KServe runtime run: no binary or model"
elif ! "$PIPESERVE_BIN" --help | grep -q -- '--grpc-port'; then
  skip "(e) KServe runtime run: this binary has no --grpc-port (the gRPC server), which the runtime passes"
else
  stage "(e) KServe runtime (deploy/kserve) run as its pod"
  SHOW_LINES=10 run "(e) runtime args/env: startup probe, probes, v2 health/metadata/infer, /metrics, gRPC port, exit 0" \
    python ci/kserve_check.py live deploy/kserve --bin "$PIPESERVE_BIN" --model-dir "$MODEL_DIR"
  SHOW_LINES=10 run "(e) the chart's runtime (kserve-values) the same way" \
    python ci/kserve_check.py live "$KSERVE_CHART" --bin "$PIPESERVE_BIN" --model-dir "$MODEL_DIR"
  stage_end
fi

# (f) /docs in a real browser: renders the routes, only local requests, no console or CSP error,
# "Try it out" on /embed 401 without the key and 200 with it.
if [[ "${SKIP_BROWSER:-0}" == 1 ]]; then skip "(f) /docs in Chromium"
elif [[ $LIVE_READY != 1 ]]; then fail "(f) /docs in Chromium: no binary or model"
else
  stage "(f) /docs in headless Chromium"
  if ! command -v chromium >/dev/null; then
    SHOW_LINES=0 run "apt-get install chromium" bash -c \
      'apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null'
  fi
  SHOW_LINES=10 run "(f) /docs renders the routes; Try it out POST /embed: 401 without the key, 200 with it" \
    python ci/docs_browser_check.py --bin "$PIPESERVE_BIN" --model-dir "$MODEL_DIR" ${SCREENSHOT:+--screenshot "$SCREENSHOT"}
  stage_end
fi

# ---------------------------------------------------------------------------------------------
printf '\n== timings\n'; printf '  %s\n' "${TIMINGS[@]}"
printf '\n== summary: %d passed, %d failed, %d skipped\n' "${#PASSED[@]}" "${#FAILED[@]}" "${#SKIPPED[@]}"
for f in "${FAILED[@]}"; do printf '  FAIL %s\n' "$f"; done
((${#FAILED[@]} == 0))
