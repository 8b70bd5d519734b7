#!/usr/bin/env bash
# Installs everything servelab needs, idempotently: Debian tools, Docker's docker-proxy
# binary (extracted from Debian's docker.io .deb; dockerd is never started), and a
# Python virtual environment in .venv with labkit and its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
# docker-registry (distribution 2.8) and skopeo: the OCI registry path (registry.kind "distribution"); the
# registry's systemd service is never started (policy-rc.d below), the lab runs its own in a namespace
APT_PKGS="nginx-light iperf3 iproute2 nftables libpcap0.8 tcpdump tshark curl ca-certificates e2fsprogs fuse3 libfuse3-3 docker-registry skopeo apache2-utils ${EXTRA_APT_PKGS:-}"

say() { printf '[setup] %s\n' "$*"; }

need_apt=()
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need_apt[*]} (run this as root, or install them yourself)"; exit 1
  fi
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # Keep the packages' own services (nginx on :80) from starting: the lab starts its own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d; trap - EXIT
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.servelab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[notebooks,test]"
  touch "$stamp"
fi

# JupyterLab in this environment saves widget state with a notebook (03's tuning panel reopens drawn, not as
# "Error displaying widget: model not found"), and neither asks to fetch Jupyter's news nor checks for updates
# (its "notified about official Jupyter news?" box covered the outputs' right edge; the lab works offline):
# JupyterLab 4's plugin @jupyterlab/apputils-extension:notification, keys fetchNews ("true"/"false"/"none") and
# checkForUpdates (its schema: share/jupyter/lab/schemas/@jupyterlab/apputils-extension/notification.json).
# Application-level defaults a person can still change; merged into an existing file, its other keys kept.
overrides="$VENV/share/jupyter/lab/settings/overrides.json"
mkdir -p "$(dirname "$overrides")"
"$VENV/bin/python" - "$overrides" <<'PY'
import json, sys
from pathlib import Path
p = Path(sys.argv[1])
have = json.loads(p.read_text()) if p.exists() and p.read_text().strip() else {}
want = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
for plugin, keys in want.items():
    have.setdefault(plugin, {}).update(keys)
p.write_text(json.dumps(have, indent=1) + "\n")
PY

if [ ! -x "$VENV/bin/docker-proxy" ]; then
  say "extracting docker-proxy from Debian's docker.io package"
  mkdir -p .cache/deb
  if ! ls .cache/deb/docker.io_*.deb >/dev/null 2>&1; then
    (cd .cache/deb && apt-get download -q docker.io 2>/dev/null) || {
      apt-get update -q >/dev/null; (cd .cache/deb && apt-get download -q docker.io 2>/dev/null); }
  fi
  tmp=$(mktemp -d)
  dpkg-deb --fsys-tarfile .cache/deb/docker.io_*.deb | tar -x -C "$tmp" ./usr/sbin/docker-proxy
  install -m 0755 "$tmp/usr/sbin/docker-proxy" "$VENV/bin/docker-proxy"
  rm -rf "$tmp"
fi
say "ready: $("$VENV/bin/python" -c 'import labkit; print("labkit", labkit.__version__)'), $(nginx -v 2>&1), $(iperf3 --version | head -1 | cut -d' ' -f1-2), docker-proxy from docker.io $(ls .cache/deb/ 2>/dev/null | sed -n 's/docker.io_\([^_]*\)_.*/\1/p' | head -1)"
