#!/usr/bin/env python3
"""Independent Dice of a DICOM SEG against a synthetic study's lesion truth.

Used by tests/pipeline_dce.rs to check segnode's own `eval` with code that shares
nothing with segnode: the SEG is read with highdicom (`highdicom.seg.segread`), the
truth with `tomllib`, and every segmented pixel centre is placed in patient coordinates
from the frame's own functional groups:

    p = ImagePositionPatient + col * PixelSpacing[1] * row_dir + row * PixelSpacing[0] * col_dir

(PS3.3 C.7.6.2.1.1; row_dir/col_dir are the two ImageOrientationPatient vectors and
PixelSpacing is [between rows, between columns]). A pixel is lesion iff its centre lies
inside the truth ellipsoid, boundary included:

    sum_i ((p - centre_mm) . axes[i] / radii_mm[i])^2 <= 1

(`LesionTruth::contains` in src/synth/truth.rs, re-implemented here from its definition).

The geometry is cross-checked against highdicom's own volume API: `seg.get_volume()` gives
an affine; the patient position of pixel (0, 0) of every frame through that affine must
equal the frame's ImagePositionPatient, and the Dice of the volume's voxels (placed by the
affine) must match the per-frame Dice.

Usage:  seg_dice.py SEG_FILE TRUTH_TOML [--segment N]

Prints one JSON object on stdout:
    dice, iou             2|A∩B|/(|A|+|B|) and |A∩B|/|A∪B| (1.0 when both are empty), with
                          |B| = truth.toml's voxel_count (the lesion voxels of the source grid)
    seg_voxels            segmented pixels of the segment, over all its frames
    truth_voxels          truth.toml's voxel_count
    truth_voxels_on_frames  pixel centres of the segment's frames inside the ellipsoid
                          (equals truth_voxels when the frames are the source grid)
    intersection          segmented pixels inside the ellipsoid
    frames                NumberOfFrames; segment_frames: frames of the segment
    rows, columns
    referenced_series     [{series_instance_uid, instances: [sop_instance_uid...]}], in
                          ReferencedSeriesSequence order
    affine_max_error_mm   max over frames |affine @ (k, 0, 0) - IPP| for the slice index k
                          the inverse affine gives the frame (k is rounded to an integer)
    affine_max_index_offset  max distance of those inverse-affine indices from integers,
                          and of their row/column indices from 0
    affine_slice_indices  the slice index k of every frame, in frame order
    volume_dice, volume_seg_voxels  the same measure from get_volume()'s array and affine
Exit status 2 and a message on stderr when the SEG cannot be read or lacks geometry.
"""

import argparse
import json
import sys
import tomllib

import highdicom as hd
import numpy as np


def fail(message):
    print(f"seg_dice.py: {message}", file=sys.stderr)
    sys.exit(2)


def first_item(dataset, keyword):
    seq = getattr(dataset, keyword, None)
    return seq[0] if seq else None


def functional_group(per_frame_item, shared, keyword):
    """A functional group macro's item: per-frame first, else shared."""
    item = first_item(per_frame_item, keyword) if per_frame_item is not None else None
    return item if item is not None else first_item(shared, keyword)


def floats(values, count, what):
    out = [float(v) for v in values]
    if len(out) != count:
        fail(f"{what} has {len(out)} values, expected {count}")
    return np.array(out, dtype=np.float64)


class Ellipsoid:
    def __init__(self, truth):
        self.centre = np.array(truth["centre_mm"], dtype=np.float64)
        self.radii = np.array(truth["radii_mm"], dtype=np.float64)
        self.axes = np.array(truth["axes"], dtype=np.float64)
        if self.centre.shape != (3,) or self.radii.shape != (3,) or self.axes.shape != (3, 3):
            fail("truth.toml: centre_mm, radii_mm must have 3 numbers and axes 3 rows of 3")

    def contains(self, points):
        """points: (..., 3) patient coordinates (mm) -> boolean mask of shape (...)."""
        d = points - self.centre
        s = np.zeros(points.shape[:-1], dtype=np.float64)
        for axis, radius in zip(self.axes, self.radii):
            t = (d[..., 0] * axis[0] + d[..., 1] * axis[1] + d[..., 2] * axis[2]) / radius
            s += t * t
        return s <= 1.0


def scores(intersection, seg_voxels, truth_voxels):
    union = seg_voxels + truth_voxels - intersection
    if union == 0:
        return 1.0, 1.0
    return 2.0 * intersection / (seg_voxels + truth_voxels), intersection / union


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seg")
    parser.add_argument("truth")
    parser.add_argument("--segment", type=int, default=1)
    args = parser.parse_args()

    with open(args.truth, "rb") as f:
        truth = tomllib.load(f)
    ellipsoid = Ellipsoid(truth)
    truth_voxels = int(truth["voxel_count"])

    seg = hd.seg.segread(args.seg)
    if str(seg.SegmentationType) != "BINARY":
        fail(f"SegmentationType {seg.SegmentationType} is not BINARY")
    if args.segment not in seg.segment_numbers:
        fail(f"no segment {args.segment}; the SEG has {list(seg.segment_numbers)}")
    rows, columns = int(seg.Rows), int(seg.Columns)
    number_of_frames = int(seg.NumberOfFrames)
    shared = seg.SharedFunctionalGroupsSequence[0]
    per_frame = seg.PerFrameFunctionalGroupsSequence
    if len(per_frame) != number_of_frames:
        fail(f"{number_of_frames} frames but {len(per_frame)} per-frame functional group items")

    pixels = np.asarray(seg.pixel_array).astype(bool)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if pixels.shape != (number_of_frames, rows, columns):
        fail(f"pixel array has shape {pixels.shape}, expected {(number_of_frames, rows, columns)}")

    r_index, c_index = np.meshgrid(
        np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij"
    )
    seg_voxels = intersection = on_frames = segment_frames = 0
    frame_ipps = []
    for i, item in enumerate(per_frame):
        ident = functional_group(item, shared, "SegmentIdentificationSequence")
        if ident is None:
            fail(f"frame {i + 1} has no SegmentIdentificationSequence")
        orientation = functional_group(item, shared, "PlaneOrientationSequence")
        measures = functional_group(item, shared, "PixelMeasuresSequence")
        position = functional_group(item, shared, "PlanePositionSequence")
        if orientation is None or measures is None or position is None:
            fail(f"frame {i + 1} lacks plane orientation, pixel measures or plane position")
        iop = floats(orientation.ImageOrientationPatient, 6, "ImageOrientationPatient")
        spacing = floats(measures.PixelSpacing, 2, "PixelSpacing")
        ipp = floats(position.ImagePositionPatient, 3, "ImagePositionPatient")
        frame_ipps.append(ipp)
        if int(ident.ReferencedSegmentNumber) != args.segment:
            continue
        segment_frames += 1
        row_dir, col_dir = iop[:3], iop[3:]
        centres = (
            ipp
            + (c_index * spacing[1])[..., np.newaxis] * row_dir
            + (r_index * spacing[0])[..., np.newaxis] * col_dir
        )
        inside = ellipsoid.contains(centres)
        mask = pixels[i]
        seg_voxels += int(mask.sum())
        intersection += int((mask & inside).sum())
        on_frames += int(inside.sum())
    dice, iou = scores(intersection, seg_voxels, truth_voxels)

    referenced_series = [
        {
            "series_instance_uid": str(item.SeriesInstanceUID),
            "instances": [
                str(ref.ReferencedSOPInstanceUID)
                for ref in getattr(item, "ReferencedInstanceSequence", [])
            ],
        }
        for item in getattr(seg, "ReferencedSeriesSequence", [])
    ]

    # highdicom's own geometry: the volume affine maps (slice, row, column) indices to
    # patient coordinates.
    try:
        volume = seg.get_volume(segment_numbers=[args.segment])
    except Exception as e:  # noqa: BLE001 - any refusal is the finding
        fail(f"highdicom cannot build a volume from the frames of segment {args.segment}: {e}")
    affine = np.asarray(volume.affine, dtype=np.float64)
    inverse = np.linalg.inv(affine)
    max_error = max_offset = 0.0
    slice_indices = []
    for ipp in frame_ipps:
        index = (inverse @ np.append(ipp, 1.0))[:3]
        k = int(np.rint(index[0]))
        max_offset = max(max_offset, abs(index[0] - k), abs(index[1]), abs(index[2]))
        mapped = (affine @ np.array([k, 0.0, 0.0, 1.0]))[:3]
        max_error = max(max_error, float(np.abs(mapped - ipp).max()))
        slice_indices.append(k)
    array = np.asarray(volume.array)
    if array.ndim == 4:
        array = array[..., 0]
    voxel_index = np.argwhere(array.astype(bool)).astype(np.float64)
    world = (affine[:3, :3] @ voxel_index.T).T + affine[:3, 3]
    volume_seg_voxels = len(voxel_index)
    volume_intersection = int(ellipsoid.contains(world).sum()) if volume_seg_voxels else 0
    volume_dice, _ = scores(volume_intersection, volume_seg_voxels, truth_voxels)

    json.dump(
        {
            "dice": dice,
            "iou": iou,
            "seg_voxels": seg_voxels,
            "truth_voxels": truth_voxels,
            "truth_voxels_on_frames": on_frames,
            "intersection": intersection,
            "frames": number_of_frames,
            "segment_frames": segment_frames,
            "rows": rows,
            "columns": columns,
            "referenced_series": referenced_series,
            "affine_max_error_mm": max_error,
            "affine_max_index_offset": float(max_offset),
            "affine_slice_indices": slice_indices,
            "volume_spatial_shape": [int(v) for v in volume.spatial_shape],
            "volume_dice": volume_dice,
            "volume_seg_voxels": volume_seg_voxels,
            "highdicom_version": hd.__version__,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
