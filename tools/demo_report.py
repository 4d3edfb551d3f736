#!/usr/bin/env python3
"""The `make demo` report: a summary table of one study's job and a PNG preview.

Reads (no segnode code): the spool index (SQLite: channels come from the job's study, the
findings and stage timings from its job row), `segnode eval --json` output, the SEG and the
source files. The preview shows slices through the lesion of the first post-contrast phase
with the SEG mask outlined in red; frames are matched to source slices by
ImagePositionPatient, so a misplaced SEG shows up misplaced.

usage: demo_report.py --spool DIR --study-dir DIR --seg SEG.dcm --eval EVAL.json --out PNG
"""
import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_common import finished_job, format_rows, outline, timing_rows  # noqa: E402


def summary(spool: Path, seg: pydicom.Dataset, score: dict) -> str:
    study = str(seg.StudyInstanceUID)
    pipeline, trigger, findings, timings = finished_job(spool, study)
    db = sqlite3.connect(f"file:{spool / 'index.sqlite'}?mode=ro", uri=True)
    # The frames lie on the referenced series; the model's other inputs are related series.
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    referenced |= {str(s.SeriesInstanceUID) for s in getattr(seg, "RelatedSeriesSequence", [])}
    series = db.execute(
        "SELECT series_number, series_description, series_uid, "
        "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid) "
        "FROM series s WHERE study_uid = ? ORDER BY series_number",
        (study,),
    ).fetchall()
    rows = [("study", study), ("pipeline", f"{pipeline} (trigger: {trigger})")]
    for number, description, uid, count in series:
        role = "input" if uid in referenced else "ignored"
        rows.append((f"series {number}", f"{description:<26} {count:>4} slices  {role}"))
    for f in findings:
        rows.append((f"segment {f['label']!r}", f"{f['voxels']} voxels, {f['volume_ml']:.2f} mL, "
                     f"{f['fraction_percent']:.3f} % of the volume"))
    rows.append(("Dice / IoU vs truth", f"{score['dice']:.4f} / {score['iou']:.4f}  (patient coordinates)"))
    rows += timing_rows(timings)
    return format_rows(rows)


def frames_by_position(seg: pydicom.Dataset) -> dict:
    """Mask of segment 1 per frame, keyed by the frame's IPP (rounded to 0.01 mm)."""
    bits = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    out = {}
    for k, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        if int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != 1:
            continue
        ipp = tuple(round(float(v), 2) for v in frame.PlanePositionSequence[0].ImagePositionPatient)
        out[ipp] = bits[k].astype(bool)
    return out


def preview(study_dir: Path, seg: pydicom.Dataset, out: Path) -> int:
    masks = frames_by_position(seg)
    post1 = [pydicom.dcmread(p) for p in sorted(study_dir.rglob("*.dcm"))]
    post1 = [d for d in post1 if getattr(d, "TemporalPositionIdentifier", None) == 2]
    slices = []
    for d in post1:
        ipp = tuple(round(float(v), 2) for v in d.ImagePositionPatient)
        mask = masks.get(ipp)
        if mask is not None and mask.any():
            slices.append((int(mask.sum()), ipp, d, mask))
    if not slices:
        sys.exit("the SEG has no segmented pixel on the post-contrast slices")
    slices.sort(key=lambda s: s[1])
    # Spread over the middle of the lesion's extent: the end slices only graze it.
    lo, hi = int(0.2 * (len(slices) - 1)), int(round(0.8 * (len(slices) - 1)))
    picks = [slices[int(i)] for i in np.unique(np.linspace(lo, hi, min(4, len(slices))).round())]
    tiles = []
    for _, ipp, d, mask in picks:
        img = d.pixel_array.astype(np.float32)
        lo, hi = np.percentile(img, [1, 99.5])
        grey = np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        rgb = np.stack([grey] * 3, axis=-1)
        rgb[outline(mask)] = (255, 40, 40)
        tile = Image.fromarray(rgb).resize((320, 320), Image.NEAREST)
        ImageDraw.Draw(tile).text((6, 6), f"z={ipp[2]:.1f} mm", fill=(255, 255, 0))
        tiles.append(tile)
    sheet = Image.new("RGB", (320 * len(tiles), 320))
    for i, t in enumerate(tiles):
        sheet.paste(t, (320 * i, 0))
    sheet.save(out)
    return len(tiles)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--study-dir", type=Path, required=True)
    ap.add_argument("--seg", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True, help="segnode eval --json output")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    seg = pydicom.dcmread(a.seg)
    score = json.loads(a.eval.read_text())[0]
    print(summary(a.spool, seg, score))
    n = preview(a.study_dir, seg, a.out)
    print(f"  preview ({n} slices through the lesion, post-contrast 1, mask outlined): {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
