#!/usr/bin/env bash
# `make demo`: start segnode on a free port with a local spool, write a synthetic DCE
# study, send it with segnode's own SCU, show what the node stored, stop the node.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/segnode"
out=demo-output
rm -rf "$out"
mkdir -p "$out"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== starting segnode on 127.0.0.1:$port (log: $out/serve.log)"
"$bin" serve --port "$port" --data-dir "$out/spool" >"$out/serve.log" 2>&1 &
pid=$!
stop_node() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop_node EXIT

for _ in $(seq 1 100); do
  if "$bin" echo "SEGNODE@127.0.0.1:$port" --timeout 2 >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "segnode exited early:"; cat "$out/serve.log"; exit 1; }
  sleep 0.1
done
"$bin" echo "SEGNODE@127.0.0.1:$port"

echo "== writing a synthetic 4-phase DCE study"
"$bin" synth "$out/study" --slices 96 --size 256

echo "== sending it with segnode's SCU"
time "$bin" send "SEGNODE@127.0.0.1:$port" "$out/study"

echo "== what the node stored"
"$bin" status --data-dir "$out/spool"

stop_node
trap - EXIT
echo "== node stopped; its log:"
tail -n 5 "$out/serve.log"
echo
echo "Not there yet: segmentation and the SEG back (the DCE pipeline and end-to-end issues)."
