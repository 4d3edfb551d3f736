#!/usr/bin/env bash
# `make demo`: the embedded default config end to end. Start segnode on a free port with
# a local spool, write a synthetic 4-phase DCE study, send it with segnode's own SCU, wait
# for the SEG the node writes to its results folder, score it against the phantom truth;
# then the same for a synthetic fetal head ultrasound image (the second pipeline); stop
# the node.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/segnode"
out=demo-output
rm -rf "$out"
mkdir -p "$out"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== starting segnode (embedded default config) on 127.0.0.1:$port, log: $out/serve.log"
"$bin" serve --port "$port" --data-dir "$out/spool" >"$out/serve.log" 2>&1 &
pid=$!
stop_node() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop_node EXIT

for _ in $(seq 1 300); do
  if "$bin" echo "SEGNODE@127.0.0.1:$port" --timeout 2 >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "segnode exited early:"; cat "$out/serve.log"; exit 1; }
  sleep 0.1
done
"$bin" echo "SEGNODE@127.0.0.1:$port"

# seg_for TRUTH_DIR PATH LIMIT_S: send PATH to the node with segnode's SCU (one association),
# wait at most LIMIT_S for the SEG of the study in TRUTH_DIR/truth.toml and its measurement
# report (written after the SEG, `<SEG stem>-report.dcm`), print the SEG's path (progress
# and timing go to stderr).
seg_for() {
  local study started seg="" report finished
  study=$(sed -n 's/^study_uid = "\(.*\)"$/\1/p' "$1/truth.toml")
  started=$(date +%s.%N)
  "$bin" send "SEGNODE@127.0.0.1:$port" "$2" >&2
  for _ in $(seq 1 $(($3 * 5))); do
    report=$(find "$out/spool/results/$study" -maxdepth 1 -name '*-report.dcm' 2>/dev/null | head -n 1 || true)
    [ -n "$report" ] && seg="${report%-report.dcm}.dcm" && [ -f "$seg" ] && break
    seg=""
    sleep 0.2
  done
  [ -n "$seg" ] || { echo "no SEG after $3 s; log:" >&2; tail -n 30 "$out/serve.log" >&2; return 1; }
  finished=$(date +%s.%N)
  printf 'SEG %s\n(%.1f s from the first instance sent to the SEG on disk)\n' "$seg" \
    "$(echo "$finished - $started" | bc)" >&2
  echo "$seg"
}

echo "== writing a synthetic 4-phase DCE study (4 x 96 slices of 256x256, plus a localizer)"
"$bin" synth "$out/study" --slices 96 --size 256

echo "== sending it with segnode's SCU (one association) and waiting for the SEG"
seg=$(seg_for "$out/study" "$out/study" 120)

echo "== summary"
"$bin" eval "$seg" "$out/study" --json >"$out/eval.json"
"${SEGNODE_VENV:-$HOME/.cache/segnode/venv}/bin/python" tools/demo_report.py \
  --spool "$out/spool" --study-dir "$out/study" --seg "$seg" --eval "$out/eval.json" --out "$out/preview.png"

echo "== the measurement report (DICOM SR TID 1500) against the phantom's truth"
"$bin" eval "$seg" "$out/study" --report | sed -n '/measurement/,$p'

echo "== conformance (dciodvfy): SEG, then SR"
dciodvfy "$seg" 2>&1 | head -n 5
dciodvfy "${seg%.dcm}-report.dcm" 2>&1 | head -n 5

echo
echo "== fetal head ultrasound: a synthetic image as an ultrasound machine stores it (RGB, JPEG baseline, region calibration)"
"$bin" synth --preset fetal-us "$out/us"
echo "== sending it and waiting for its SEG"
us_seg=$(seg_for "$out/us" "$out/us/US0001.dcm" 60)
"$bin" eval "$us_seg" "$out/us" --report
"$bin" eval "$us_seg" "$out/us" --json >"$out/us-eval.json"
"${SEGNODE_VENV:-$HOME/.cache/segnode/venv}/bin/python" tools/demo_report_us.py \
  --spool "$out/spool" --image "$out/us/US0001.dcm" --seg "$us_seg" --eval "$out/us-eval.json" \
  --out "$out/us-preview.png"
echo "== conformance (dciodvfy)"
dciodvfy "$us_seg" 2>&1 | head -n 5

stop_node
trap - EXIT
echo "== node stopped"
echo "The same through a real Orthanc (Lua routing, SEG back into the study): make demo-orthanc"
