#!/usr/bin/env python3
"""Independent reader for segnode's SEG conformance test.

Reads a DICOM Segmentation with pydicom (raw per-frame attributes and the bit-unpacked
pixel array) and with highdicom (segments by source instance, and the volume with its
affine), and prints one JSON object on stdout. The Rust test compares it with the masks
it encoded. Usage:

    read_seg.py SEG_FILE SOURCE_SOP_INSTANCE_UID...

The source UIDs give the slice order of `by_source_instance`.
"""

import hashlib
import json
import sys

import highdicom as hd
import numpy as np
import pydicom


def bits(array):
    """A 2D boolean array as a string of 0/1, row-major."""
    return "".join("1" if v else "0" for v in np.asarray(array, dtype=bool).ravel())


def first(seq_parent, keyword):
    seq = getattr(seq_parent, keyword, None)
    return seq[0] if seq else None


def frame_info(ds):
    shared = ds.SharedFunctionalGroupsSequence[0]
    frames = []
    for item in ds.PerFrameFunctionalGroupsSequence:
        def group(keyword):
            return first(item, keyword) or first(shared, keyword)

        derivation = group("DerivationImageSequence")
        sources = [s.ReferencedSOPInstanceUID for s in derivation.SourceImageSequence] if derivation else []
        position = group("PlanePositionSequence")
        content = group("FrameContentSequence")
        frames.append({
            "segment": int(group("SegmentIdentificationSequence").ReferencedSegmentNumber),
            "sources": sources,
            "position": [float(v) for v in position.ImagePositionPatient] if position else [],
            "dimension_index_values": [int(v) for v in content.DimensionIndexValues] if content else [],
        })
    return frames


def main():
    path, uids = sys.argv[1], sys.argv[2:]
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(bool)
    if raw.ndim == 2:
        raw = raw[np.newaxis]
    out = {
        "sop_class_uid": str(ds.SOPClassUID),
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "number_of_frames": int(ds.NumberOfFrames),
        "pixel_data_length": len(ds.PixelData),
        "frames": frame_info(ds),
        "raw_frames": [bits(f) for f in raw],
        "raw_sha256": hashlib.sha256(np.packbits(raw, bitorder="little").tobytes()).hexdigest(),
    }

    seg = hd.seg.segread(path)
    segments = []
    for number in seg.segment_numbers:
        desc = seg.get_segment_description(number)
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )[..., 0]
        segments.append({
            "number": int(number),
            "label": desc.segment_label,
            "algorithm_type": desc.algorithm_type.value,
            "category": desc.segmented_property_category.value,
            "property_type": desc.segmented_property_type.value,
            "by_source_instance": [bits(p) for p in pixels],
            "set_pixels": int(pixels.astype(bool).sum()),
        })
    out["segments"] = segments

    if "FrameOfReferenceUID" in ds:
        volume = seg.get_volume(combine_segments=False)
        array = volume.array.astype(bool)
        points = {}
        for channel, number in enumerate(seg.segment_numbers):
            index = np.argwhere(array[..., channel])
            homogeneous = np.concatenate([index, np.ones((len(index), 1))], axis=1)
            world = (volume.affine @ homogeneous.T).T[:, :3]
            points[str(number)] = world.round(4).tolist()
        out["volume"] = {
            "spatial_shape": list(volume.spatial_shape),
            "affine": volume.affine.tolist(),
            "points": points,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
