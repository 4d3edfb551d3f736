#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, the project venv that
# carries libtorch (PyPI torch 2.11.0, which tch 0.24 expects), and the cargo settings that
# let a plain `cargo build` find libtorch, and OHIF's SEG code (pinned npm packages) that the
# viewer tests run in Node. Safe to run again: each step checks first.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${SEGNODE_VENV:-$HOME/.cache/segnode/venv}
certs=${SEGNODE_CERTS:-$HOME/.cache/segnode/certs}
ohif_node=${SEGNODE_OHIF_NODE:-$HOME/.cache/segnode/ohif-node}
# rsyslog (+ its TLS driver): the audit-trail tests run a real syslog collector.
apt_packages=(dcmtk orthanc orthanc-dicomweb dicom3tools cmake python3-venv g++ pkg-config bc openssl rsyslog rsyslog-gnutls
  prometheus chromium)
# Node and npm run OHIF's SEG code in the tests; a Node build that bundles npm (NodeSource)
# is fine, so Debian's packages are asked for only when the commands are missing.
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# The versions OHIF 3.13.2 pins: its SEG display path ends in these packages.
ohif_packages=(
  @cornerstonejs/adapters@5.6.8
  @cornerstonejs/core@5.6.8
  @cornerstonejs/tools@5.6.8
  dcmjs@0.52.0
  # The adapters' build imports @babel/runtime without declaring it (OHIF's app brings it);
  # the version their declared @babel/runtime-corejs2 dependency has.
  @babel/runtime@7.26.10
)

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "system packages present"; return; fi
  log "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The Debian package may start a system Orthanc on 4242/8042; tests start their own.
  if pgrep -x Orthanc >/dev/null 2>&1; then
    as_root service orthanc stop >/dev/null 2>&1 || as_root pkill -x Orthanc || true
  fi
}

install_venv() {
  local req="$here/tools/requirements.txt"
  local stamp="$venv/.segnode-requirements"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    log "python venv up to date at $venv"; return
  fi
  log "creating python venv at $venv (torch 2.11.0 is large; first run takes minutes)"
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  cp "$req" "$stamp"
}

install_ohif_node() {
  local stamp="$ohif_node/.segnode-packages"
  local want
  want=$(printf '%s\n' "${ohif_packages[@]}")
  if [ -d "$ohif_node/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "OHIF SEG packages present at $ohif_node"; return
  fi
  log "installing OHIF's SEG packages into $ohif_node: ${ohif_packages[*]}"
  mkdir -p "$ohif_node"
  [ -f "$ohif_node/package.json" ] || printf '{ "name": "segnode-ohif-peer", "private": true }\n' > "$ohif_node/package.json"
  (cd "$ohif_node" && npm install --no-audit --no-fund --loglevel=error --save-exact "${ohif_packages[@]}")
  printf '%s\n' "$want" > "$stamp"
}

write_cargo_config() {
  local torch_dir
  torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  mkdir -p "$here/.cargo"
  local want
  want=$(cat <<CFG
# Written by scripts/setup.sh for this machine; not committed.
[env]
LIBTORCH = "$torch_dir"
LIBTORCH_CXX11_ABI = "1"
SEGNODE_PYTHON = "$venv/bin/python"
SEGNODE_OHIF_NODE = "$ohif_node"
CFG
)
  if [ ! -f "$here/.cargo/config.toml" ] || [ "$(cat "$here/.cargo/config.toml")" != "$want" ]; then
    printf '%s\n' "$want" > "$here/.cargo/config.toml"
    log "wrote .cargo/config.toml (LIBTORCH=$torch_dir)"
  fi
}

make_example_certs() {
  # Example DICOM TLS certificates (a CA, segnode, a peer, an expired and an untrusted
  # one) for the README's TLS set-up; outside the repository, never committed.
  bash "$here/scripts/certs.sh" "$certs"
  log "example TLS certificates in $certs"
}

install_apt_packages
install_venv
install_ohif_node
write_cargo_config
make_example_certs
log "ready"
