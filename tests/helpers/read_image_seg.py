#!/usr/bin/env python3
"""Read a SEG of one 2D source image with highdicom; print per segment its pixel count and
a position checksum, for tests/pipeline_fetal.rs to compare with segnode's own reader.

    read_image_seg.py SEG.dcm SOURCE_SOP_INSTANCE_UID

JSON on stdout: {"segments": [{"number", "label", "pixels", "checksum"}], "overlap": ...}.
The checksum is the sum of (flat index + 1) over set pixels, mod 2**61, with frames of a
segment in source-frame order and pixels row-major.
"""

import json
import sys

import highdicom as hd
import numpy as np


def main() -> int:
    seg_path, source_uid = sys.argv[1], sys.argv[2]
    seg = hd.seg.segread(seg_path)
    numbers = list(seg.segment_numbers)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source_uid],
        segment_numbers=numbers,
        combine_segments=False,
    )
    # [instances, rows, columns, segments]
    out = []
    for k, number in enumerate(numbers):
        mask = pixels[..., k].astype(bool).reshape(-1)
        index = np.flatnonzero(mask).astype(np.uint64) + np.uint64(1)
        checksum = int(index.sum(dtype=np.uint64)) % (1 << 61)
        out.append({
            "number": int(number),
            "label": seg.get_segment_description(number).SegmentLabel,
            "pixels": int(mask.sum()),
            "checksum": checksum,
        })
    print(json.dumps({"segments": out, "overlap": str(seg.SegmentsOverlap)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
