#!/usr/bin/env bash
# `make demo-orthanc`: `make demo` through a real Orthanc. Start Orthanc from the template
# conf/orthanc/ (its Lua script routes each stable MR or US study to segnode) and segnode
# with a config whose pipelines deliver their SEGs to that Orthanc, on free loopback ports;
# upload a synthetic 4-phase DCE study to Orthanc over REST; wait for the SEG to land in the
# same Orthanc study; check that the SEG did not route the study back; then the same for a
# fetal head ultrasound image; print the Orthanc URLs; stop both. DEMO_KEEP=1 keeps both running until Enter so the URLs can be opened.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

command -v Orthanc >/dev/null || { echo "Orthanc is missing: run make setup (Debian package orthanc)"; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/segnode"
out="$repo/demo-output/orthanc"
rm -rf "$out"
mkdir -p "$out/pipelines"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node_port=$(free_port)
http_port=$(free_port)
dicom_port=$(free_port)
api="http://127.0.0.1:$http_port"
# Orthanc's REST API through python3's urllib (no extra HTTP tool): http GET|POST PATH [BODY]
http() {
  python3 - "$1" "$api$2" "${3-}" <<'EOF2' 2>/dev/null
import sys, urllib.request
method, url, body = sys.argv[1:]
req = urllib.request.Request(url, data=body.encode() if method == "POST" else None, method=method)
sys.stdout.write(urllib.request.urlopen(req, timeout=30).read().decode())
EOF2
}

# --- Orthanc from the template: our ports, storage under demo-output, segnode's port.
python3 - "$repo/conf/orthanc" "$out" "$http_port" "$dicom_port" "$node_port" <<'EOF'
import json, os, sys
template, out, http, dicom, node = sys.argv[1:]
c = json.load(open(os.path.join(template, "orthanc.json")))
c["HttpPort"], c["DicomPort"] = int(http), int(dicom)
c["StorageDirectory"] = os.path.join(out, "orthanc-storage")
c["IndexDirectory"] = os.path.join(out, "orthanc-index")
c["LuaScripts"] = [os.path.join(template, s) for s in c["LuaScripts"]]
c["DicomModalities"]["segnode"]["Port"] = int(node)
json.dump(c, open(os.path.join(out, "orthanc.json"), "w"), indent=2)
EOF

# --- segnode: the shipped pipelines (DCE breast, fetal head ultrasound), delivering to Orthanc.
for p in dce_breast fetal_head_us; do
  sed 's/^destinations = \[\]/destinations = ["orthanc"]/' "conf/pipelines/$p.toml" \
    >"$out/pipelines/$p.toml"
  grep -q '^destinations = \["orthanc"\]' "$out/pipelines/$p.toml"
done
cat >"$out/segnode.toml" <<EOF
[node]
ae_title = "SEGNODE"
bind = "127.0.0.1"
port = $node_port
data_dir = "$out/spool"

[[access.allow]]
ae_title = "ORTHANC"
host = "127.0.0.1"

[pipelines]
enabled = ["dce_breast", "fetal_head_us"]
definitions_dir = "$out/pipelines"
models_dir = "$repo/models"

[[destinations]]
name = "orthanc"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = $dicom_port
calling_ae = "SEGNODE"

[outbox]
initial_delay_seconds = 2
max_delay_seconds = 60
max_attempts = 10
EOF

orthanc_pid=""
node_pid=""
stop_all() {
  for pid in $node_pid $orthanc_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" 2>/dev/null || true
    fi
  done
}
trap stop_all EXIT

echo "== starting Orthanc (conf/orthanc/orthanc.json + route-to-segnode.lua): HTTP $http_port, DICOM ORTHANC@$dicom_port, log: $out/orthanc.log"
Orthanc "$out/orthanc.json" >"$out/orthanc.log" 2>&1 &
orthanc_pid=$!
for _ in $(seq 1 300); do
  http GET /system >/dev/null && break
  kill -0 "$orthanc_pid" 2>/dev/null || { echo "Orthanc exited early:"; tail -n 30 "$out/orthanc.log"; exit 1; }
  sleep 0.1
done
http GET /system >/dev/null || { echo "Orthanc did not answer in 30 s:"; tail -n 30 "$out/orthanc.log"; exit 1; }

echo "== starting segnode on 127.0.0.1:$node_port (SEG destination: ORTHANC@127.0.0.1:$dicom_port), log: $out/serve.log"
"$bin" serve --config "$out/segnode.toml" >"$out/serve.log" 2>&1 &
node_pid=$!
# Orthanc C-ECHOes segnode (segnode only admits ORTHANC): proves both configs agree.
echoed=""
for _ in $(seq 1 300); do
  if http POST /modalities/segnode/echo '{}' >/dev/null; then echoed=1; break; fi
  kill -0 "$node_pid" 2>/dev/null || { echo "segnode exited early:"; cat "$out/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$echoed" ] || { echo "Orthanc cannot C-ECHO segnode:"; tail -n 20 "$out/serve.log"; exit 1; }
echo "Orthanc -> segnode C-ECHO: success"

echo "== writing a synthetic 4-phase DCE study (4 x 96 slices of 256x256, plus a localizer)"
"$bin" synth "$out/study" --slices 96 --size 256 >/dev/null

echo "== uploading it to Orthanc (POST /instances, one HTTP connection)"
t0=$(date +%s.%N)
study_id=$(python3 - "$api" "$out/study" <<'EOF2'
import http.client, json, os, sys, urllib.parse
api, root = sys.argv[1:]
u = urllib.parse.urlparse(api)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".dcm"))
study = None
for path in files:
    with open(path, "rb") as fh:
        conn.request("POST", "/instances", body=fh.read(), headers={"Content-Type": "application/dicom"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"upload of {path}: HTTP {r.status} {body[:200]!r}")
    study = json.loads(body)["ParentStudy"]
print(study)
print(f"{len(files)} instances uploaded", file=sys.stderr)
EOF2
)
started=$(date +%s.%N)
printf 'in Orthanc study %s (upload %.1f s)\n' "$study_id" "$(echo "$started - $t0" | bc)"

series_json() { http GET "/studies/$study_id/series"; }
seg_series() {
  series_json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["MainDicomTags"].get("Modality") == "SEG":
        print(s["ID"], s["Instances"][0])'
}

echo "== waiting for Orthanc to route the stable study (StableAge 5 s) and for the SEG to come back"
seg=""
for _ in $(seq 1 900); do
  seg=$(seg_series || true)
  [ -n "$seg" ] && break
  kill -0 "$node_pid" 2>/dev/null || { echo "segnode exited:"; tail -n 30 "$out/serve.log"; exit 1; }
  sleep 0.2
done
if [ -z "$seg" ]; then
  echo "no SEG in Orthanc after 180 s."
  echo "-- Orthanc (Lua and jobs):"; grep -a -E 'Lua says|Job|E[0-9]{4}' "$out/orthanc.log" | tail -n 15
  echo "-- segnode:"; tail -n 15 "$out/serve.log"
  exit 1
fi
finished=$(date +%s.%N)
read -r seg_series_id seg_instance_id <<<"$seg"
printf '== SEG in Orthanc %.1f s after the upload finished (StableAge 5 s + routing + job + delivery)\n' "$(echo "$finished - $started" | bc)"

echo "== what happened"
grep -a 'Lua says: segnode routing' "$out/orthanc.log" | sed -E 's/^.*Lua says: //'
grep -E 'job queued|finding|job done|deliver' "$out/serve.log" | sed -E 's/^[^ ]+ +INFO +//' | cut -c1-220

echo "== the study in Orthanc"
series_json | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin), key=lambda s: int(s["MainDicomTags"].get("SeriesNumber", "0") or 0)):
    t = s["MainDicomTags"]
    print("  %-4s %-6s %-32s %4d instance(s)" % (t.get("Modality", ""), t.get("SeriesNumber", ""), t.get("SeriesDescription", ""), len(s["Instances"])))'

echo "== routing loop check: waiting past another StableAge"
sleep 9
jobs=$(http GET "/jobs?expand" | python3 -c 'import json, sys; print(sum(j["Type"] == "DicomModalityStore" for j in json.load(sys.stdin)))')
segs=$(seg_series | wc -l)
echo "studies routed to segnode: $jobs, SEG series in the study: $segs"
[ "$jobs" = 1 ] && [ "$segs" = 1 ] || { echo "routing loop?"; exit 1; }

echo "== fetal head ultrasound: a synthetic image (RGB, JPEG baseline) uploaded to Orthanc"
"$bin" synth --preset fetal-us "$out/us" >/dev/null
us_study_id=$(python3 - "$api" "$out/us/US0001.dcm" <<'EOF2'
import json, sys, urllib.request
api, path = sys.argv[1:]
req = urllib.request.Request(api + "/instances", data=open(path, "rb").read(), method="POST",
                             headers={"Content-Type": "application/dicom"})
print(json.load(urllib.request.urlopen(req, timeout=60))["ParentStudy"])
EOF2
)
us_seg=""
for _ in $(seq 1 300); do
  us_seg=$(http GET "/studies/$us_study_id/series" | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["MainDicomTags"].get("Modality") == "SEG":
        print(s["Instances"][0])' || true)
  [ -n "$us_seg" ] && break
  sleep 0.2
done
[ -n "$us_seg" ] || { echo "no ultrasound SEG in Orthanc after 60 s"; tail -n 15 "$out/serve.log"; exit 1; }
python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=60).read())' \
  "$api/instances/$us_seg/file" "$out/us-seg-from-orthanc.dcm"
echo "SEG back in the ultrasound study; scored against the phantom truth:"
"$bin" eval "$out/us-seg-from-orthanc.dcm" "$out/us"

cat <<EOF
== Orthanc URLs (while Orthanc runs)
  Explorer, the study:  $api/app/explorer.html#study?uuid=$study_id
  Explorer, the SEG:    $api/app/explorer.html#series?uuid=$seg_series_id
  Explorer, ultrasound: $api/app/explorer.html#study?uuid=$us_study_id
  REST, the study:      $api/studies/$study_id
  REST, SEG tags:       $api/instances/$seg_instance_id/tags?simplify
  REST, SEG file:       $api/instances/$seg_instance_id/file
  Routing jobs:         $api/jobs?expand
EOF

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  read -r -p "Orthanc and segnode keep running; press Enter to stop them. " _ || true
fi
stop_all
trap - EXIT
echo "== Orthanc and segnode stopped (data under $out)"
