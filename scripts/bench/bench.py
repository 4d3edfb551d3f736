#!/usr/bin/env python3
"""`make bench`: segnode side by side with DCMTK storescp, Orthanc and MONAI (issue 5).

Run from the repository root after `cargo build --release --bins --examples`:

    $VENV/bin/python scripts/bench/bench.py            # the full benchmark (~10 min, 2 cores)
    $VENV/bin/python scripts/bench/bench.py --quick    # smoke test: small study, 1 run each

Parts (each prints a table; everything is also written under <cargo target dir>/bench/):
  1 ingest  a synthetic 4-phase study (plain and JPEG-LS) sent by DCMTK storescu over one
            association to segnode, segnode while a real Prometheus scrapes its /metrics every
            second, storescp and Orthanc, receivers alternating, 1 warm-up
            + N runs each, fresh storage per run, every run checked to have stored all;
            segnode-tls is segnode with only a DICOM TLS port (example certificates from
            scripts/certs.sh, client certificate required), storescu sending with +tls:
            its row against the plain segnode row is the cost of TLS.
  2 stages  `segnode segment` on the study with the kinetic and the SwinUNETR pipelines.
  3 infer   segnode's sliding window (examples/bench_infer.rs) vs MONAI's
            sliding_window_inference (tools/monai_sliding_window.py), same model, input,
            roi, overlap and threads.
  4 e2e     end to end through Orthanc: a fresh Orthanc 1.10 from conf/orthanc/ (Lua routing,
            StableAge 5 s as in the template, 2 s with --quick) and a fresh `segnode serve`
            (kinetic pipeline, SEG delivered to that Orthanc); per run a fresh synthetic study
            is sent by storescu to Orthanc, which routes it to segnode once stable: time from
            the start of Orthanc's push (its routing job's CreationTime) to the SEG stored back
            in the study, and from the upload's end to the SEG minus StableAge; 3 runs (1 with
            --quick), each SEG checked (Modality SEG, frames), no routing loop checked.
  5 load    4 studies from 4 concurrent storescu associations to one `segnode serve`
            running the kinetic pipeline: time to 4 SEGs, studies/hour, peak RSS, losses.
  6 assembler  the study assembler's cost per instance (examples/bench_assembler.rs) with 1
            and with 500 studies collecting: it must stay flat (each instance evaluates only
            the study it belongs to). `--parts assembler` runs just this row.
All traffic is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PDU = 131072  # the same max PDU for every receiver (segnode's default)
NODELAY = {"TCP_NODELAY": "1"}


# ---------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def target_dir() -> Path:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    return Path(json.loads(out)["target_directory"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run(cmd, timeout: float, env=None, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full_env, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} -> {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p


def dicom_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


def total_bytes(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n== {title}", "  ".join(h.ljust(w) for h, w in zip(cells[0], widths)), line]
    for r in cells[1:]:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def synth(segnode: Path, out: Path, slices: int, size: int, seed: int) -> list[Path]:
    run([segnode, "synth", out, "--slices", slices, "--size", size, "--seed", seed, "--no-localizer"], timeout=300)
    (out / "truth.toml").unlink(missing_ok=True)  # storescu sends the folder: DICOM only
    return dicom_files(out)


def storescu(folder: Path, port: int, aec: str, jls: bool, timeout: float = 600, extra=()) -> float:
    cmd = ["storescu", "-aet", "BENCHSCU", "-aec", aec, "-pdu", PDU, "-ts", 60, "-ta", 30,
           "+sd", "+r", "+sp", "*.dcm", *extra]
    if jls:
        cmd.append("-xt")  # propose JPEG-LS lossless (+ uncompressed)
    cmd += [HOST, port, folder]
    t = time.perf_counter()
    run(cmd, timeout=timeout, env=NODELAY)
    return time.perf_counter() - t


def count_settled(receiver, expected: int, timeout: float = 10.0) -> tuple[int, float]:
    """The receiver's instance count once it lists all `expected` (segnode files journaled
    instances milliseconds after acknowledging them), polled every 50 ms for at most
    `timeout` s; with when the first count that listed them all started, in seconds after
    the sender finished (0: the first count did)."""
    t0 = time.perf_counter()
    while True:
        started = time.perf_counter() - t0
        got = receiver.count()
        if got >= expected or started > timeout:
            return got, started
        time.sleep(0.05)


# ---------------------------------------------------------------- receivers


class Segnode:
    """`segnode serve` as a plain storage node (pipelines off), fresh data dir."""

    name = "segnode"
    aet = "SEGNODE"
    storescu_args: list = []

    def __init__(self, exe: Path, work: Path, pipelines: bool = False):
        self.exe, self.work = exe, work
        cfg = (REPO / "conf/segnode.toml").read_text()
        # Only the kinetic DCE pipeline (the one measured), or none for a plain storage node.
        cfg, n = re.subn(r"(?m)^enabled = \[.*\]$", 'enabled = ["dce_breast"]' if pipelines else "enabled = []", cfg)
        assert n == 1, "conf/segnode.toml has no [pipelines] enabled line"
        cfg = cfg.replace('definitions_dir = "conf/pipelines"', f'definitions_dir = "{REPO / "conf/pipelines"}"')
        cfg = cfg.replace('models_dir = "models"', f'models_dir = "{REPO / "models"}"')
        self.config = work / ("segnode-pipelines.toml" if pipelines else "segnode-store.toml")
        self.config.write_text(cfg)
        self.http_port = 8080

    def use_http_port(self, port: int) -> None:
        """Point the admin HTTP server ([http] port) at `port` in the config file."""
        cfg, n = re.subn(r'(?m)(^\[http\][^\[]*?^port = )\d+', rf"\g<1>{port}", self.config.read_text())
        assert n == 1, "conf/segnode.toml has no [http] port line"
        self.config.write_text(cfg)
        self.http_port = port

    def start(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.use_http_port(free_port())
        self.log = open(data.parent / f"{data.name}.log", "w")
        self.proc = subprocess.Popen(
            [str(self.exe), "serve", "--config", str(self.config), "--port", str(self.port),
             "--data-dir", str(data)], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def count(self) -> int:
        out = run([self.exe, "status", "--config", self.config, "--data-dir", self.data], timeout=60).stdout
        # "spool D: N studies, M series, K instances"
        return int(out.splitlines()[0].rsplit(",", 1)[1].split()[0])

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


class SegnodeTls(Segnode):
    """`segnode serve` (pipelines off) with only a DICOM TLS listener: the example
    certificates of scripts/certs.sh, client certificate required; storescu sends with +tls."""

    name = "segnode-tls"

    def __init__(self, exe: Path, work: Path):
        super().__init__(exe, work)
        self.certs = work / "certs"
        run(["bash", REPO / "scripts/certs.sh", self.certs], timeout=120)
        self.plain_config = self.config.read_text()
        self.config = work / "segnode-tls.toml"
        c = self.certs
        self.storescu_args = ["+tls", str(c / "peer.key"), str(c / "peer.pem"), "+cf", str(c / "ca.pem")]

    def start(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        c = self.certs
        self.config.write_text(self.plain_config + (
            f'\n[tls]\nport = {self.port}\ncertificate = "{c / "segnode.pem"}"\n'
            f'private_key = "{c / "segnode.key"}"\nca = "{c / "ca.pem"}"\n'))
        self.log = open(data.parent / f"{data.name}.log", "w")
        # --port moves the plain port out of the way; with [tls] it is not opened.
        self.proc = subprocess.Popen(
            [str(self.exe), "serve", "--config", str(self.config), "--port", str(free_port()),
             "--data-dir", str(data)], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)


class SegnodeScraped(Segnode):
    """The same `segnode serve`, its /metrics scraped every second by a real Prometheus."""

    name = "segnode+prometheus"

    def __init__(self, exe: Path, work: Path):
        super().__init__(exe, work)
        self.config = work / "segnode-scraped.toml"
        self.config.write_text((work / "segnode-store.toml").read_text())

    def start(self, data: Path) -> None:
        super().start(data)
        prom = data.parent / f"{data.name}-prometheus"
        prom.mkdir(parents=True, exist_ok=True)
        (prom / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: segnode\n"
            f"    static_configs:\n      - targets: ['{HOST}:{self.http_port}']\n")
        self.prom_port = free_port()
        self.prom_log = open(prom / "prometheus.log", "w")
        self.prom = subprocess.Popen(
            ["prometheus", f"--config.file={prom / 'prometheus.yml'}", f"--storage.tsdb.path={prom / 'data'}",
             f"--web.listen-address={HOST}:{self.prom_port}"], cwd=REPO, stdout=self.prom_log,
            stderr=subprocess.STDOUT)
        wait_port(self.prom_port, self.prom)
        # Wait for the first successful scrape, so that every timed run is scraped throughout.
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                up = http_json(self.prom_port, "/api/v1/query?query=up").get("data", {}).get("result", [])
            except urllib.error.HTTPError:
                up = []  # 503 while Prometheus is still starting (its TSDB opens after the port)
            if up and up[0]["value"][1] == "1":
                return
            time.sleep(0.2)
        raise RuntimeError("prometheus did not scrape segnode within 30 s")

    def stop(self) -> None:
        stop(self.prom)
        self.prom_log.close()
        super().stop()


class Storescp:
    """DCMTK storescp writing every instance to a fresh folder (no fsync)."""

    name = "storescp"
    aet = "STORESCP"
    storescu_args: list = []

    def start(self, data: Path) -> None:
        data.mkdir(parents=True)
        self.data, self.port = data, free_port()
        self.log = open(data.parent / f"{data.name}.log", "w")
        self.proc = subprocess.Popen(
            ["storescp", "-aet", self.aet, "-pdu", str(PDU), "+xa", "-od", str(data), str(self.port)],
            cwd=REPO, env=dict(os.environ, **NODELAY), stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def count(self) -> int:
        return sum(1 for f in self.data.iterdir() if f.is_file())

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


class Orthanc:
    """Orthanc with fresh storage and index, no plugins, same max PDU, TCP_NODELAY."""

    name = "orthanc"
    aet = "ORTHANC"
    storescu_args: list = []

    def start(self, data: Path) -> None:
        data.mkdir(parents=True)
        self.data, self.port, self.http = data, free_port(), free_port()
        cfg = {
            "Name": "bench", "DicomAet": self.aet, "DicomPort": self.port, "HttpPort": self.http,
            "StorageDirectory": str(data / "storage"), "IndexDirectory": str(data / "index"),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False, "StorageCompression": False, "Plugins": [],
            "MaximumPduLength": PDU, "TcpNoDelay": True, "HttpServerEnabled": True,
            "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"], "SaveJobs": False,
        }
        (data / "orthanc.json").write_text(json.dumps(cfg))
        self.log = open(data.parent / f"{data.name}.log", "w")
        self.proc = subprocess.Popen(["Orthanc", str(data / "orthanc.json")], cwd=data,
                                     env=dict(os.environ, **NODELAY), stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.http, self.proc)
        wait_port(self.port, self.proc)

    def count(self) -> int:
        with urllib.request.urlopen(f"http://{HOST}:{self.http}/statistics", timeout=30) as r:
            return json.load(r)["CountInstances"]

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


# ---------------------------------------------------------------- part 1: ingest


def part_ingest(a, segnode: Path, work: Path, results: dict) -> list[list]:
    log(f"ingest: synthesising 4 x {a.slices} slices of {a.size}^2")
    plain = work / "ingest-plain"
    files = synth(segnode, plain, a.slices, a.size, seed=1)
    jls = work / "ingest-jls"
    log(f"ingest: JPEG-LS compressing {len(files)} files with dcmcjpls")

    def compress(f: Path) -> None:
        dst = jls / f.relative_to(plain)
        dst.parent.mkdir(parents=True, exist_ok=True)
        run(["dcmcjpls", f, dst], timeout=60)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(compress, files))
    n = len(files)
    receivers = [Segnode(segnode, work), SegnodeTls(segnode, work), SegnodeScraped(segnode, work),
                 Storescp(), Orthanc()]
    rows, raw = [], []
    for syntax, folder in (("plain", plain), ("jpeg-ls", jls)):
        size = total_bytes(dicom_files(folder))
        times = {r.name: [] for r in receivers}
        for i in range(a.runs + 1):
            k = i % len(receivers)
            order = receivers[k:] + receivers[:k]  # alternate who goes first
            for r in order:
                data = work / f"recv-{r.name}-{syntax}-{i}"
                # Flush what earlier runs left in the page cache (storescp and Orthanc do not
                # fsync), so that their deferred writeback does not land in the next run.
                os.sync()
                r.start(data)
                try:
                    t = storescu(folder, r.port, r.aet, jls=syntax == "jpeg-ls", extra=r.storescu_args)
                    got, settled = count_settled(r, n)
                finally:
                    r.stop()
                if got != n:
                    raise RuntimeError(f"{r.name} stored {got} of {n} instances ({syntax}, run {i})")
                shutil.rmtree(data, ignore_errors=True)
                raw.append({"syntax": syntax, "receiver": r.name, "run": i, "warmup": i == 0,
                            "seconds": t, "stored": got, "listed_by_count_started_s": round(settled, 3)})
                if i > 0:
                    times[r.name].append(t)
                log(f"ingest {syntax} run {i}{' (warm-up)' if i == 0 else ''}: {r.name} {t:.3f} s, {got}/{n} stored"
                    f" (all listed by a count started {settled:.2f} s after the last response)")
        base = {k: med(v) for k, v in times.items()}
        for r in receivers:
            ts = times[r.name]
            rows.append([syntax, r.name, n, round(size / 1e6, 1), len(ts), round(med(ts), 3), round(min(ts), 3),
                         round(size / 1e6 / med(ts), 1), round(med(ts) / base["storescp"], 2),
                         round(med(ts) / base["orthanc"], 2)])
    header = ["syntax", "receiver", "instances", "MB", "runs", "median_s", "min_s", "MB/s",
              "x storescp", "x orthanc"]
    print(fmt_table(f"1. Ingest: storescu, one association, {n} instances ({a.slices} slices x 4 of {a.size}^2); "
                    "segnode journals and fdatasyncs each instance before its response, storescp does not; max PDU 128 KiB for all; TCP_NODELAY=1",
                    header, rows), flush=True)
    write_csv(a.out / "ingest.csv", header, rows)
    write_csv(a.out / "ingest_runs.csv", list(raw[0].keys()), [list(r.values()) for r in raw])
    results["ingest"] = {"header": header, "rows": rows, "runs": raw}
    return rows


# ---------------------------------------------------------------- part 2: stages


def parse_stages(out: str) -> dict[str, float]:
    stages, on = {}, False
    for line in out.splitlines():
        if line.startswith("stage timings:"):
            on = True
            continue
        if on and line.startswith("  ") and line.rstrip().endswith(" s"):
            name, value = line.strip()[:-2].rsplit(None, 1)
            stages[name.strip()] = float(value)
    return stages


def part_stages(a, segnode: Path, study: Path, work: Path, results: dict) -> dict:
    per = {}
    rows = []
    for pipeline, reps in (("dce_breast", a.stage_runs), ("dce_breast_swinunetr", a.swin_runs)):
        samples = []
        for i in range(reps):
            out = run([segnode, "segment", study, "--out", work / f"seg-{pipeline}.dcm", "--pipeline", pipeline,
                       "--definitions-dir", REPO / "conf/pipelines", "--models-dir", REPO / "models"],
                      timeout=900, env={"RUST_LOG": "warn"}).stdout
            s = parse_stages(out)
            if "total" not in s:
                raise RuntimeError(f"no stage table in segment output:\n{out}")
            samples.append(s)
            log(f"stages {pipeline} run {i}: total {s['total']:.3f} s")
        names = list(samples[0].keys())
        m = {k: med([s[k] for s in samples]) for k in names}
        m["all but inference"] = sum(v for k, v in m.items() if k not in ("model load + warm-up", "inference", "total"))
        per[pipeline] = m
    names = list(per["dce_breast"].keys())
    for k in names:
        rows.append([k] + [round(per[p].get(k, float("nan")), 3) for p in per])
    header = ["stage (median s)"] + list(per)
    print(fmt_table(f"2. Pipeline stages, `segnode segment`, one study of 4 x {a.slices} slices of {a.size}^2 "
                    f"(median of {a.stage_runs} kinetic, {a.swin_runs} SwinUNETR runs)", header, rows), flush=True)
    write_csv(a.out / "stages.csv", header, rows)
    results["stages"] = per
    return per


# ---------------------------------------------------------------- part 3: inference parity


def part_infer(a, work: Path, results: dict) -> dict:
    import numpy as np

    shape = [4] + a.infer_shape
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    npy = work / "infer_input.npy"
    np.save(npy, x)
    model = REPO / "models/swinunetr_fs24_seed0.pt"
    common = ["--model", model, "--input", npy, "--roi", *a.roi, "--overlap", 0.5, "--mode", "constant",
              "--sw-batch-size", 1, "--threads", a.threads, "--repeat", a.infer_runs]
    bench_infer = a.target / a.profile / "examples/bench_infer"
    res = {}
    # Alternate the two implementations (rounds x processes) so that a busy spell on a shared
    # machine does not land on one side only; times are pooled over the rounds.
    for rnd in range(a.infer_rounds):
        for who in (["segnode", "monai"] if rnd % 2 == 0 else ["monai", "segnode"]):
            if who == "segnode":
                cmd = [bench_infer, *common, "--device", "cpu"]
            else:
                cmd = [sys.executable, REPO / "tools/monai_sliding_window.py", *common, "--output", work / "y.npy",
                       "--time"]
            out = run(cmd, timeout=1800, env={"RUST_LOG": "warn"}).stdout
            line = json.loads(out.strip().splitlines()[-1])
            if who in res:
                res[who]["times_s"] += line["times_s"]
            else:
                res[who] = line
            log(f"infer round {rnd} {who}: {line['times_s']}")
    for line in res.values():
        line["median_s"] = med(line["times_s"])
        line["min_s"] = min(line["times_s"])
    ratio = res["segnode"]["median_s"] / res["monai"]["median_s"]
    header = ["implementation", "input", "roi", "windows", "threads", "runs", "median_s", "min_s", "x MONAI",
              "x MONAI (min)"]
    windows = res["segnode"].get("windows", "")
    rows = [[w, "x".join(map(str, shape)), "x".join(map(str, a.roi)), windows, a.threads, len(res[w]["times_s"]),
             round(res[w]["median_s"], 3), round(res[w]["min_s"], 3),
             round(res[w]["median_s"] / res["monai"]["median_s"], 2),
             round(res[w]["min_s"] / res["monai"]["min_s"], 2)] for w in ("segnode", "monai")]
    print(fmt_table("3. Inference parity: SwinUNETR fs24 TorchScript, overlap 0.5, constant blending, "
                    "CPU (segnode examples/bench_infer vs MONAI sliding_window_inference)", header, rows), flush=True)
    write_csv(a.out / "infer.csv", header, rows)
    results["infer"] = {"segnode": res["segnode"], "monai": res["monai"], "ratio": ratio,
                        "ratio_min": res["segnode"]["min_s"] / res["monai"]["min_s"]}
    return results["infer"]


def part_assembler(a, results: dict) -> dict:
    exe = a.target / a.profile / "examples/bench_assembler"
    out = run([exe, "--collecting", 1, 500, "--instances", 2000], timeout=600, env={"RUST_LOG": "warn"}).stdout
    lines = [json.loads(l) for l in out.strip().splitlines()]
    by = {l["collecting"]: l["ns_per_instance"] for l in lines}
    ratio = by[500] / by[1]
    header = ["studies collecting", "instances", "ns per instance", "x 1 study"]
    rows = [[l["collecting"], l["instances"], l["ns_per_instance"], round(l["ns_per_instance"] / by[1], 2)]
            for l in lines]
    print(fmt_table("6. Assembler cost per instance (must stay flat as studies collect)", header, rows), flush=True)
    write_csv(a.out / "assembler.csv", header, rows)
    results["assembler"] = {"ns_per_instance": by, "ratio_500_to_1": ratio}
    return results["assembler"]


# ---------------------------------------------------------------- part 4: end to end through Orthanc


def http_json(port: int, path: str, body=None, timeout: float = 30):
    """GET (or POST `body` as JSON) on Orthanc's REST API; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def orthanc_time(s: str) -> float:
    """An Orthanc job timestamp ("20261121T041234.123456", UTC, boost's ISO form) as Unix time."""
    from datetime import datetime, timezone
    return datetime.strptime(s, "%Y%m%dT%H%M%S.%f" if "." in s else "%Y%m%dT%H%M%S").replace(
        tzinfo=timezone.utc).timestamp()


def utc(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"


class RoutingOrthanc:
    """Orthanc 1.10 from the project's template conf/orthanc/ (its Lua routes each stable MR
    study to segnode), fresh storage, free loopback ports, StableAge set by the caller, the
    bench's storescu (BENCHSCU) declared as a modality that may store, TCP_NODELAY."""

    aet = "ORTHANC"

    def __init__(self, data: Path, dicom_port: int, segnode_port: int, stable_age: int):
        data.mkdir(parents=True)
        self.data, self.port, self.http = data, dicom_port, free_port()
        template = REPO / "conf/orthanc"
        c = json.loads((template / "orthanc.json").read_text())
        c.update({"HttpPort": self.http, "DicomPort": self.port, "StableAge": stable_age,
                  "StorageDirectory": str(data / "storage"), "IndexDirectory": str(data / "index"),
                  "LuaScripts": [str(template / s) for s in c["LuaScripts"]], "SaveJobs": False,
                  "MaximumPduLength": PDU})
        c["DicomModalities"]["segnode"]["Port"] = segnode_port
        # The template stores only from declared modalities at their host: declare storescu.
        c["DicomModalities"]["bench"] = {"AET": "BENCHSCU", "Host": HOST, "Port": free_port(), "AllowEcho": True,
                                         "AllowStore": True}
        self.config = data / "orthanc.json"
        self.config.write_text(json.dumps(c, indent=2))
        self.log_path = data.parent / f"{data.name}.log"

    def start(self) -> None:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["Orthanc", str(self.config)], cwd=self.data,
                                     env=dict(os.environ, **NODELAY), stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.http, self.proc)
            wait_port(self.port, self.proc)
            deadline = time.monotonic() + 30
            while True:  # ours, not another process on that port: it answers with our DICOM port
                try:
                    if self.get("/system")["DicomPort"] == self.port:
                        return
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Orthanc's REST API did not answer; see {self.log_path}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def get(self, path: str):
        return http_json(self.http, path)

    def post(self, path: str, body):
        return http_json(self.http, path, body)

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


class RoutingSegnode:
    """`segnode serve` running the default kinetic pipeline (dce_breast) with Orthanc as its
    SEG destination: the config demo-orthanc.sh writes, on the bench's ports and folders."""

    aet = "SEGNODE"

    def __init__(self, exe: Path, work: Path, port: int, orthanc_port: int):
        self.exe, self.port = exe, port
        self.data = work / "e2e-segnode"
        pipelines = work / "e2e-pipelines"
        pipelines.mkdir(parents=True)
        p = (REPO / "conf/pipelines/dce_breast.toml").read_text()
        p2 = p.replace("\ndestinations = []", '\ndestinations = ["orthanc"]')
        if p2 == p:
            raise RuntimeError("conf/pipelines/dce_breast.toml has no `destinations = []` to point at Orthanc")
        (pipelines / "dce_breast.toml").write_text(p2)
        self.config = work / "e2e-segnode.toml"
        self.config.write_text(f"""[node]
ae_title = "{self.aet}"
bind = "{HOST}"
port = {port}
data_dir = "{self.data}"

[[access.allow]]
ae_title = "ORTHANC"
host = "{HOST}"

[pipelines]
enabled = ["dce_breast"]
definitions_dir = "{pipelines}"
models_dir = "{REPO / 'models'}"

[[destinations]]
name = "orthanc"
ae_title = "ORTHANC"
host = "{HOST}"
port = {orthanc_port}
calling_ae = "{self.aet}"

[outbox]
initial_delay_seconds = 2
max_delay_seconds = 60
max_attempts = 10
""")
        self.log_path = work / "e2e-segnode.log"

    def start(self) -> None:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(self.exe), "serve", "--config", str(self.config)], cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def segnode_log_events(path: Path, after: float) -> dict[str, float]:
    """From `segnode serve`'s log (RFC 3339 UTC timestamps, µs), the first events after
    `after` (Unix time): an association from ORTHANC accepted (the push arriving), that
    association ended, the SEG delivered (outbox). A cross-check of Orthanc's own times."""
    from datetime import datetime
    found: dict[str, float] = {}
    wanted = {"accepted": ('calling_ae="ORTHANC"', "association accepted"),
              "released": ('calling_ae="ORTHANC"', "association ended"),
              "job_queued": ("job queued",), "job_done": ("job done",),
              "delivered": ("SEG delivered",)}
    for line in path.read_text(errors="replace").splitlines():
        stamp = line.split(" ", 1)[0]
        try:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if t < after:
            continue
        for k, needles in wanted.items():
            if k not in found and all(x in line for x in needles):
                found[k] = t
    return found


def seg_series(orthanc: RoutingOrthanc, study: str) -> list[dict]:
    return [s for s in orthanc.get(f"/studies/{study}/series")
            if s["MainDicomTags"].get("Modality") == "SEG" and s["Instances"]]


def store_jobs(orthanc: RoutingOrthanc) -> list[dict]:
    return [j for j in orthanc.get("/jobs?expand") if j.get("Type") == "DicomModalityStore"]


def part_e2e(a, segnode: Path, work: Path, results: dict) -> dict:
    stable_age = a.stable_age
    node_port, dicom_port = free_port(), free_port()
    orthanc = RoutingOrthanc(work / "e2e-orthanc", dicom_port, node_port, stable_age)
    node = RoutingSegnode(segnode, work, node_port, dicom_port)
    studies = []
    for i in range(a.e2e_runs):
        d = work / f"e2e-study-{i}"
        studies.append((d, len(synth(segnode, d, a.slices, a.size, seed=20 + i))))
    log(f"e2e: {a.e2e_runs} run(s), 4 x {a.slices} slices of {a.size}^2, Orthanc StableAge {stable_age} s")
    raw = []
    os.sync()
    started = []
    try:
        orthanc.start()
        started.append(orthanc)
        node.start()
        started.append(node)
        # Orthanc C-ECHOes segnode (segnode admits only ORTHANC): both configs agree.
        deadline = time.monotonic() + 30
        while True:
            try:
                orthanc.post("/modalities/segnode/echo", {})
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc cannot C-ECHO segnode: {e}; see {node.log_path}")
                time.sleep(0.2)
        for i, (folder, n) in enumerate(studies):
            if i > 0:
                # The SEG made the previous study stable once more (the Lua declines to route it
                # again): let that pass so it does not overlap this run.
                time.sleep(stable_age + 1.5)
            known = set(orthanc.get("/studies"))
            jobs_before = {j["ID"] for j in store_jobs(orthanc)}
            t_up0 = time.time()
            storescu(folder, orthanc.port, orthanc.aet, jls=False)
            t_up1 = time.time()  # storescu got the last C-STORE response and released
            new = [s for s in orthanc.get("/studies") if s not in known]
            if len(new) != 1:
                raise RuntimeError(f"e2e run {i}: expected 1 new study in Orthanc, found {len(new)}")
            study = new[0]
            stored = orthanc.get(f"/studies/{study}/statistics")["CountInstances"]
            if stored != n:
                raise RuntimeError(f"e2e run {i}: Orthanc stored {stored} of {n} instances")
            # Poll every 100 ms (bounded) for: the routing job (seen), and the SEG in the study.
            t_job_seen = t_seg = None
            segs: list[dict] = []
            deadline = time.monotonic() + stable_age + a.e2e_timeout
            while time.monotonic() < deadline:
                now = time.time()
                if t_job_seen is None and any(j["ID"] not in jobs_before for j in store_jobs(orthanc)):
                    t_job_seen = now
                segs = seg_series(orthanc, study)
                if segs:
                    t_seg = now
                    break
                for who in (orthanc, node):
                    if who.proc.poll() is not None:
                        raise RuntimeError(f"{who.proc.args[0]} exited with {who.proc.returncode}; see {who.log_path}")
                time.sleep(0.1)
            if t_seg is None:
                raise RuntimeError(f"e2e run {i}: no SEG in Orthanc study {study} {stable_age + a.e2e_timeout} s after "
                                   f"the upload; see {orthanc.log_path} and {node.log_path}")
            # The SEG really is there: one SEG series, Modality SEG, frames.
            seg = orthanc.get(f"/series/{segs[0]['ID']}")
            tags = orthanc.get(f"/instances/{seg['Instances'][0]}/simplified-tags")
            frames = int(tags.get("NumberOfFrames") or 0)
            if tags.get("Modality") != "SEG" or frames <= 0 or len(segs) != 1:
                raise RuntimeError(f"e2e run {i}: SEG check failed: {len(segs)} SEG series, Modality "
                                   f"{tags.get('Modality')}, NumberOfFrames {frames}")
            # The routing job the Lua created for this study (its MR series as resources).
            mr = {s["ID"] for s in orthanc.get(f"/studies/{study}/series") if s["MainDicomTags"].get("Modality") == "MR"}
            jobs = [j for j in store_jobs(orthanc) if j["ID"] not in jobs_before
                    and set(j.get("Content", {}).get("ParentResources", [])) & mr]
            if len(jobs) != 1:
                raise RuntimeError(f"e2e run {i}: expected 1 routing job for the study, found {len(jobs)}")
            job = jobs[0]
            if job["State"] != "Success":
                raise RuntimeError(f"e2e run {i}: routing job {job['ID']} is {job['State']}")
            t_push0 = orthanc_time(job["CreationTime"])
            t_push1 = orthanc_time(job["CompletionTime"]) if job.get("CompletionTime") else float("nan")
            ev = segnode_log_events(node.log_path, t_up1)
            r = {"run": i, "study": study, "instances": n, "upload_s": t_up1 - t_up0,
                 "upload_end_utc": utc(t_up1), "push_start_utc": utc(t_push0), "seg_seen_utc": utc(t_seg),
                 "stable_wait_s": t_push0 - t_up1, "push_s": t_push1 - t_push0,
                 "push_end_to_seg_s": t_seg - t_push1, "e2e_push_to_seg_s": t_seg - t_push0,
                 "upload_end_to_seg_s": t_seg - t_up1, "beyond_stable_age_s": t_seg - t_up1 - stable_age,
                 "job_seen_lag_s": (t_job_seen - t_push0) if t_job_seen else None,
                 "seg_series": segs[0]["ID"], "seg_frames": frames, "job": job["ID"],
                 "job_creation_time": job["CreationTime"], "job_completion_time": job.get("CompletionTime"),
                 # cross-checks from segnode's log (None when a line was not found)
                 "segnode_accept_after_push_start_s": ev["accepted"] - t_push0 if "accepted" in ev else None,
                 "segnode_release_after_push_end_s": ev["released"] - t_push1 if "released" in ev else None,
                 "seg_seen_after_segnode_delivered_s": t_seg - ev["delivered"] if "delivered" in ev else None,
                 "segnode_job_s": ev["job_done"] - ev["job_queued"] if {"job_queued", "job_done"} <= ev.keys() else None,
                 "segnode_delivery_s": ev["delivered"] - ev["job_done"] if {"job_done", "delivered"} <= ev.keys() else None}
            raw.append(r)
            log(f"e2e run {i}: upload {r['upload_s']:.2f} s, stable wait {r['stable_wait_s']:.2f} s, push "
                f"{r['push_s']:.2f} s, push start -> SEG {r['e2e_push_to_seg_s']:.2f} s, beyond StableAge "
                f"{r['beyond_stable_age_s']:.2f} s (SEG, {frames} frame(s))")
        # No routing loop: past another StableAge the SEGs made no new routing job.
        time.sleep(stable_age + 1.5)
        loop_jobs = len(store_jobs(orthanc))
        if loop_jobs != len(studies):
            raise RuntimeError(f"e2e: {loop_jobs} routing jobs for {len(studies)} studies (routing loop?)")
    finally:
        for who in reversed(started):
            who.stop()
    keys = ["upload_s", "stable_wait_s", "push_s", "push_end_to_seg_s", "e2e_push_to_seg_s", "upload_end_to_seg_s",
            "beyond_stable_age_s"]
    header = ["run", "instances", "upload s", "upload end -> push start s", "push (Orthanc job) s",
              "push end -> SEG s", "push start -> SEG s (e2e)", "upload end -> SEG s", "beyond StableAge s",
              "SEG frames"]
    rows = [[r["run"], r["instances"]] + [round(r[k], 2) for k in keys] + [r["seg_frames"]] for r in raw]
    medians = {k: med([r[k] for r in raw]) for k in keys}
    rows.append(["median", raw[0]["instances"]] + [round(medians[k], 2) for k in keys] + [""])
    print(fmt_table(f"4. End to end through Orthanc: storescu -> Orthanc 1.10 (StableAge {stable_age} s, "
                    f"conf/orthanc Lua routing) -> `segnode serve` kinetic pipeline -> SEG C-STOREd back to Orthanc; "
                    f"4 x {a.slices} slices of {a.size}^2; push start = the Lua's routing job's CreationTime "
                    "(Orthanc /jobs), SEG seen by polling the study every 100 ms", header, rows), flush=True)
    def ms(k):
        xs = [r[k] for r in raw if r[k] is not None]
        return f"{med(xs) * 1000:.0f} ms" if xs else "n/a"

    print(f"cross-check, segnode's log (median): Orthanc's association accepted {ms('segnode_accept_after_push_start_s')}"
          f" after the job's CreationTime, released {ms('segnode_release_after_push_end_s')} after its CompletionTime; "
          f"SEG seen in Orthanc {ms('seg_seen_after_segnode_delivered_s')} after segnode logged it delivered "
          f"(poll interval 100 ms); segnode's job (queued -> done) {ms('segnode_job_s')}, "
          f"done -> SEG delivered {ms('segnode_delivery_s')}", flush=True)
    write_csv(a.out / "e2e.csv", header, rows)
    write_csv(a.out / "e2e_runs.csv", list(raw[0].keys()), [list(r.values()) for r in raw])
    results["e2e"] = {"stable_age_s": stable_age, "header": header, "rows": rows, "runs": raw, "median": medians,
                      "routing_jobs": loop_jobs}
    return results["e2e"]


# ---------------------------------------------------------------- part 5: load


def rss_kib(pid: int) -> tuple[int, int]:
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return hwm, rss


def part_load(a, segnode: Path, work: Path, results: dict) -> dict:
    studies = []
    for k in range(4):
        d = work / f"load-study-{k}"
        files = synth(segnode, d, a.slices, a.size, seed=10 + k)
        studies.append((d, len(files)))
    expected = sum(n for _, n in studies)
    node = Segnode(segnode, work, pipelines=True)
    data = work / "load-data"
    os.sync()
    node.start(data)
    results_dir = data / "results"
    peak_rss = 0
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            sends = [pool.submit(storescu, d, node.port, node.aet, False) for d, _ in studies]
            segs: list[Path] = []
            deadline = time.monotonic() + a.load_timeout
            t_sent = None
            while time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_kib(node.proc.pid)[1])
                if t_sent is None and all(s.done() for s in sends):
                    t_sent = time.perf_counter() - t0
                segs = list(results_dir.rglob("*.dcm")) if results_dir.exists() else []
                if len(segs) >= 4 and t_sent is not None:
                    break
                if node.proc.poll() is not None:
                    raise RuntimeError(f"segnode serve exited with {node.proc.returncode}; see {data}.log")
                time.sleep(0.05)
            total = time.perf_counter() - t0
            send_times = [s.result() for s in sends]
        hwm, _ = rss_kib(node.proc.pid)
        if len(segs) < 4:
            raise RuntimeError(f"only {len(segs)} of 4 SEGs after {a.load_timeout} s; see {data}.log")
        stored = node.count()
    finally:
        node.stop()
    lost = expected - stored
    r = {"studies": 4, "instances_sent": expected, "instances_stored": stored, "lost": lost,
         "segs": len(segs), "send_s": send_times, "all_sent_s": t_sent, "total_s": total,
         "studies_per_hour": 4 * 3600 / total, "peak_rss_mib": hwm / 1024,
         "polled_max_rss_mib": peak_rss / 1024}
    header = ["studies", "instances", "stored", "lost", "SEGs", "all sent s", "total s (4 SEGs)",
              "studies/hour", "peak RSS MiB (VmHWM)"]
    rows = [[4, expected, stored, lost, len(segs), round(t_sent, 2), round(total, 2),
             round(r["studies_per_hour"]), round(r["peak_rss_mib"])]]
    print(fmt_table(f"5. Load: 4 studies (4 x {a.slices} slices of {a.size}^2 each) from 4 concurrent storescu "
                    "associations to one `segnode serve` (kinetic pipeline)", header, rows), flush=True)
    write_csv(a.out / "load.csv", header, rows)
    results["load"] = r
    return r


# ---------------------------------------------------------------- targets


def targets(results: dict, a) -> None:
    rows = []

    def add(name, value, goal, met):
        rows.append([name, value, goal, "n/a" if met is None else ("met" if met else "NOT MET")])

    asm = results.get("assembler")
    if asm:
        add("assembler: cost per instance, 500 / 1 studies collecting", f"{asm['ratio_500_to_1']:.2f}x", "<= 2x",
            asm["ratio_500_to_1"] <= 2.0)
    ing = results.get("ingest")
    if ing:
        for r in ing["rows"]:
            if r[1] == "segnode":
                add(f"ingest {r[0]}: segnode / storescp (median)", f"{r[8]:.2f}x", "<= 1.0x", r[8] <= 1.0)
                add(f"ingest {r[0]}: Orthanc / segnode (median)", f"{1 / r[9]:.2f}x faster", ">= 2x faster",
                    1 / r[9] >= 2.0)
    st = results.get("stages")
    if st:
        for p, m in st.items():
            v = m["all but inference"]
            add(f"all but the forward pass, {p}", f"{v:.3f} s", "<= 2 s", v <= 2.0)
    inf = results.get("infer")
    if inf:
        add("inference segnode / MONAI (median)", f"{inf['ratio']:.2f}x (min/min {inf['ratio_min']:.2f}x)",
            "<= 1.0x", inf["ratio"] <= 1.0)
    e2e = results.get("e2e")
    if e2e:
        m = e2e["median"]
        add(f"end to end through Orthanc beyond StableAge ({e2e['stable_age_s']} s), median of {len(e2e['runs'])}",
            f"{m['beyond_stable_age_s']:.2f} s (push start -> SEG {m['e2e_push_to_seg_s']:.2f} s)", "<= 5 s",
            m["beyond_stable_age_s"] <= 5.0)
    ld = results.get("load")
    if ld:
        add("peak RSS, 4-study load", f"{ld['peak_rss_mib']:.0f} MiB", "<= 1536 MiB", ld["peak_rss_mib"] <= 1536)
        add("nothing lost, 4-study load", f"{ld['lost']} lost, {ld['segs']} SEGs", "0 lost, 4 SEGs",
            ld["lost"] == 0 and ld["segs"] == 4)
    header = ["target", "measured", "goal", "status"]
    note = " (QUICK smoke run: small study, 1 run; not the targets' conditions)" if a.quick else ""
    print(fmt_table("Targets (issue 5)" + note, header, rows), flush=True)
    write_csv(a.out / "targets.csv", header, rows)
    results["targets"] = [dict(zip(header, r)) for r in rows]


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: small study, 1 run each")
    ap.add_argument("--parts", default="ingest,stages,infer,e2e,load,assembler",
                    help="comma-separated subset of ingest,stages,infer,e2e,load,assembler")
    ap.add_argument("--runs", type=int, help="timed ingest runs per receiver (after 1 warm-up); default 5")
    ap.add_argument("--e2e-runs", type=int, help="end-to-end runs through Orthanc; default 3 (1 with --quick)")
    ap.add_argument("--stable-age", type=int,
                    help="Orthanc's StableAge for the e2e part, s; default the template's (5), 2 with --quick")
    ap.add_argument("--threads", type=int, default=2, help="libtorch threads for the inference part")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (target/bench/work)")
    ap.add_argument("--profile", default="release", help="cargo profile folder of the binaries (release)")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    unknown = parts - {"ingest", "stages", "infer", "e2e", "load", "assembler"}
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}")

    if a.quick:
        a.slices, a.size, a.runs = 96, 128, a.runs or 1
        a.stage_runs, a.swin_runs, a.infer_rounds, a.infer_runs = 1, 1, 1, 1
        a.infer_shape, a.roi = [64, 64, 64], [64, 64, 64]
    else:
        a.slices, a.size, a.runs = 128, 256, a.runs or 5
        a.stage_runs, a.swin_runs, a.infer_rounds, a.infer_runs = 3, 2, 2, 2
        a.infer_shape, a.roi = [96, 96, 96], [96, 96, 96]
    a.load_timeout = 900
    a.e2e_runs = a.e2e_runs or (1 if a.quick else 3)
    if a.stable_age is None:
        a.stable_age = 2 if a.quick else json.loads((REPO / "conf/orthanc/orthanc.json").read_text())["StableAge"]
    a.e2e_timeout = 300  # per run, beyond StableAge

    a.target = target_dir()
    a.out = a.target / "bench"
    a.out.mkdir(parents=True, exist_ok=True)
    segnode = a.target / a.profile / "segnode"
    need = [segnode] + ([a.target / a.profile / "examples/bench_infer"] if "infer" in parts else []) \
        + ([a.target / a.profile / "examples/bench_assembler"] if "assembler" in parts else [])
    for exe in need:
        if not exe.exists():
            print(f"{exe} is missing: run `cargo build --release --bins --examples` first", file=sys.stderr)
            return 2
    for tool in ("storescu", "storescp", "dcmcjpls", "Orthanc"):
        if shutil.which(tool) is None:
            print(f"{tool} is not on PATH: run `make setup`", file=sys.stderr)
            return 2

    work = a.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": a.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
                    "loadavg_at_start": os.getloadavg()},
        "study": {"slices_per_phase": a.slices, "size": a.size, "phases": 4},
    }
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs ({m['cpu']}), load average at start {m['loadavg_at_start'][0]:.2f} "
          f"(anything above 0 is other work sharing these cores); {'QUICK smoke run' if a.quick else 'full run'}",
          flush=True)
    started = time.perf_counter()
    try:
        if "ingest" in parts:
            part_ingest(a, segnode, work, results)
        if "stages" in parts:
            study = work / "stages-study"
            synth(segnode, study, a.slices, a.size, seed=1)
            os.sync()
            part_stages(a, segnode, study, work, results)
        if "infer" in parts:
            part_infer(a, work, results)
        if "e2e" in parts:
            part_e2e(a, segnode, work, results)
        if "load" in parts:
            part_load(a, segnode, work, results)
        if "assembler" in parts:
            part_assembler(a, results)
        targets(results, a)
    finally:
        results["elapsed_s"] = time.perf_counter() - started
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        (a.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"done in {results['elapsed_s']:.0f} s; results in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
