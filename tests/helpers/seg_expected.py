#!/usr/bin/env python3
"""highdicom's reading of a SEG, per source image and segment, for the OHIF harness
(tests/helpers/ohif_seg.mjs) to compare OHIF's labelmaps with.

    seg_expected.py SEG.dcm OUT.json

OUT.json: {"segmentation_type", "segments": [numbers], "images": {KEY: {SEGMENT: RUNS}}}
where KEY is the source SOP Instance UID, or "UID#FRAME" for a frame of a multi-frame
source, and RUNS lists [start, length] runs of set pixels in the row-major frame. Every
source image or frame a SEG frame references is a key.
"""

import json
import sys

import highdicom as hd
import numpy as np
import pydicom


def runs(mask):
    """[start, length] runs of True in a flat boolean array."""
    flat = np.concatenate([[False], mask.reshape(-1), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flat))
    return [[int(a), int(b - a)] for a, b in zip(edges[::2], edges[1::2])]


def referenced_sources(ds):
    """(SOP Instance UID, frame number or None) of every referenced source, in frame order."""
    seen = []
    for item in ds.PerFrameFunctionalGroupsSequence:
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(source.ReferencedFrameNumber) if "ReferencedFrameNumber" in source else None
        key = (str(source.ReferencedSOPInstanceUID), frame)
        if key not in seen:
            seen.append(key)
    return seen


def main():
    path, out_path = sys.argv[1], sys.argv[2]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    seg = hd.seg.segread(path)
    numbers = [int(n) for n in seg.segment_numbers]
    images = {}
    sources = referenced_sources(ds)
    by_instance = {}
    for uid, frame in sources:
        by_instance.setdefault(uid, []).append(frame)
    for uid, frames in by_instance.items():
        if frames == [None]:
            pixels = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[uid],
                segment_numbers=numbers,
                combine_segments=False,
            )
            keys = [uid]
        else:
            pixels = seg.get_pixels_by_source_frame(
                source_sop_instance_uid=uid,
                source_frame_numbers=frames,
                segment_numbers=numbers,
                combine_segments=False,
            )
            keys = [f"{uid}#{f}" for f in frames]
        # [images, rows, columns, segments]
        for k, key in enumerate(keys):
            images[key] = {
                str(n): runs(pixels[k, ..., s].astype(bool)) for s, n in enumerate(numbers)
            }
    json.dump(
        {
            "segmentation_type": str(ds.SegmentationType),
            "segments": numbers,
            "images": images,
        },
        open(out_path, "w"),
    )


if __name__ == "__main__":
    main()
