"""Shared pieces of the `make demo` reports (tools/demo_report.py for DCE-MRI,
tools/demo_report_us.py for fetal head ultrasound): the job row from the spool index, mask
outlines, aligned key/value tables."""
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np


def finished_job(spool: Path, study: str) -> tuple[str, str, list, dict]:
    """(pipeline, trigger, findings, timings) of the study's latest finished job."""
    db = sqlite3.connect(f"file:{spool / 'index.sqlite'}?mode=ro", uri=True)
    job = db.execute(
        "SELECT pipeline, trigger, findings, timings FROM jobs WHERE study_uid = ? AND state = 'done' "
        "ORDER BY id DESC LIMIT 1",
        (study,),
    ).fetchone()
    if job is None:
        sys.exit(f"no finished job for study {study} in {spool}")
    return job[0], job[1], json.loads(job[2]), json.loads(job[3])


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask` that have a 4-neighbour outside it."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def timing_rows(timings: dict) -> list[tuple[str, str]]:
    rows = [(f"time: {stage}", f"{seconds:8.3f} s") for stage, seconds in timings.items()]
    rows.append(("time: total job", f"{sum(timings.values()):8.3f} s"))
    return rows


def format_rows(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
