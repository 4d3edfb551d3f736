#!/usr/bin/env python3
"""The `make demo` report for the fetal head ultrasound pipeline: a summary table of the
image's job and a PNG preview.

Reads (no segnode code): the spool index (the job row: findings in mm², stage timings),
`segnode eval --json` output, the SEG and the source image. The preview shows the image as
the machine stored it (JPEG, colour annotations and all) beside the same image with each
segment outlined in its own colour: brain red, cavum septi pellucidi yellow, lateral
ventricle cyan. SEG frames are matched to the image by their ReferencedSOPInstanceUID.

usage: demo_report_us.py --spool DIR --image US.dcm --seg SEG.dcm --eval EVAL.json --out PNG
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_common import finished_job, format_rows, outline, timing_rows  # noqa: E402

COLOURS = [(255, 60, 60), (255, 230, 0), (0, 230, 255)]


def summary(spool: Path, image: pydicom.Dataset, seg: pydicom.Dataset, scores: list) -> str:
    pipeline, trigger, findings, timings = finished_job(spool, str(seg.StudyInstanceUID))
    frames = int(getattr(image, "NumberOfFrames", 1) or 1)
    rows = [
        ("study", str(seg.StudyInstanceUID)),
        ("pipeline", f"{pipeline} (trigger: {trigger})"),
        ("image", f"{image.Columns}x{image.Rows}, {frames} frame(s), {image.PhotometricInterpretation}, "
                  f"transfer syntax {image.file_meta.TransferSyntaxUID}"),
        ("SEG", f"{seg.NumberOfFrames} frames, {len(seg.SegmentSequence)} segments, "
                f"SegmentsOverlap {seg.SegmentsOverlap}"),
    ]
    for f in findings:
        size = f"{f['area_mm2']:.1f} mm²" if "area_mm2" in f else f"{f['voxels']} pixels"
        rows.append((f"segment {f['label']!r}", f"{size} ({f['voxels']} pixels)"))
    for s in scores:
        rows.append((f"vs truth: {s['label']}",
                     f"Dice {s['dice']:.4f}  IoU {s['iou']:.4f}  pixel accuracy {s['pixel_accuracy']:.5f}"))
    rows += timing_rows(timings)
    return format_rows(rows)


def preview(image: pydicom.Dataset, seg: pydicom.Dataset, out: Path) -> None:
    rgb = image.pixel_array
    if getattr(image, "NumberOfFrames", 1) and int(getattr(image, "NumberOfFrames", 1)) > 1:
        rgb = rgb[0]
    if image.SamplesPerPixel == 1:
        rgb = np.stack([rgb] * 3, axis=-1)
    # pydicom 3 hands YBR colour over as RGB already (pixel_array's as_rgb default).
    rgb = rgb.astype(np.uint8)
    overlay = rgb.copy()
    bits = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns).astype(bool)
    source = str(image.SOPInstanceUID)
    for k, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        if str(ref.ReferencedSOPInstanceUID) != source or int(getattr(ref, "ReferencedFrameNumber", 1)) != 1:
            continue
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        edge = outline(bits[k])
        edge[1:, :] |= edge[:-1, :]  # two pixels wide, to survive the downscale
        edge[:, 1:] |= edge[:, :-1]
        overlay[edge] = COLOURS[(number - 1) % len(COLOURS)]
    h, w = rgb.shape[:2]
    sheet = Image.new("RGB", (2 * w, h))
    sheet.paste(Image.fromarray(rgb), (0, 0))
    sheet.paste(Image.fromarray(overlay), (w, 0))
    draw = ImageDraw.Draw(sheet)
    draw.text((w + 8, h - 20), "brain (red), CSP (yellow), LV (cyan)", fill=(255, 255, 255))
    sheet = sheet.resize((sheet.width * 2 // 3, sheet.height * 2 // 3), Image.LANCZOS)
    sheet.save(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--seg", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True, help="segnode eval --json output")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    image = pydicom.dcmread(a.image)
    seg = pydicom.dcmread(a.seg)
    scores = json.loads(a.eval.read_text())
    print(summary(a.spool, image, seg, scores))
    preview(image, seg, a.out)
    print(f"  preview (the image as stored, and with the segments outlined): {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
