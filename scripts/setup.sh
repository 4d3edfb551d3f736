#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, the project venv that
# carries libtorch (PyPI torch 2.11.0, which tch 0.24 expects), and the cargo settings that
# let a plain `cargo build` find libtorch. Safe to run again: each step checks first.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${SEGNODE_VENV:-$HOME/.cache/segnode/venv}
apt_packages=(dcmtk orthanc dicom3tools cmake python3-venv g++ pkg-config bc prometheus chromium)

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
CFG
)
  if [ ! -f "$here/.cargo/config.toml" ] || [ "$(cat "$here/.cargo/config.toml")" != "$want" ]; then
    printf '%s\n' "$want" > "$here/.cargo/config.toml"
    log "wrote .cargo/config.toml (LIBTORCH=$torch_dir)"
  fi
}

install_apt_packages
install_venv
write_cargo_config
log "ready"
