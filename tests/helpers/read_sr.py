"""Read a segnode measurement report with highdicom, independently of segnode's code.

Usage: read_sr.py REPORT.dcm
Prints JSON: the document's SOP class, modality, study and series, and every TID 1410 /
1411 measurement group found by highdicom's MeasurementReport accessors, with its
tracking identifier, finding, referenced SEG (instance, segment or frame) and the
measurements as (code value, scheme, value, unit code value) and the comment that
names any measurement the group lacks.
"""

import json
import sys

import highdicom as hd


def code(c):
    return None if c is None else {"value": c.value, "scheme": c.scheme_designator}


def measurements(group):
    out = []
    for m in group.get_measurements():
        item = {"code": m.name.value, "scheme": m.name.scheme_designator}
        num = m[0]
        if len(num.MeasuredValueSequence) > 0:
            item["value"] = float(m.value)
            item["unit"] = m.unit.value
        else:
            q = num.get("NumericValueQualifierCodeSequence")
            item["qualifier"] = q[0].CodeValue if q else None
        out.append(item)
    return out


def seg_reference(group, planar):
    if planar:
        frame = group.referenced_segmentation_frame
        if frame is None:
            return None
        ref = frame[0].ReferencedSOPSequence[0]
        src = frame[1].ReferencedSOPSequence[0]
        return {
            "sop_instance_uid": ref.ReferencedSOPInstanceUID,
            "frame": int(ref.ReferencedFrameNumber),
            "source_sop_instance_uid": src.ReferencedSOPInstanceUID,
            "source_frame": int(src.ReferencedFrameNumber)
            if "ReferencedFrameNumber" in src
            else None,
        }
    seg = group.referenced_segment
    ref = seg[0].ReferencedSOPSequence[0]
    return {
        "sop_instance_uid": ref.ReferencedSOPInstanceUID,
        "segment": int(ref.ReferencedSegmentNumber),
        "source_series_uid": seg[1].value if len(seg) > 1 else None,
    }


def main(path):
    sr = hd.sr.srread(path)
    report = sr.content
    groups = []
    for planar, found in (
        (False, report.get_volumetric_roi_measurement_groups()),
        (True, report.get_planar_roi_measurement_groups()),
    ):
        for g in found:
            comments = [
                item.TextValue
                for item in g[0].ContentSequence
                if item.ValueType == "TEXT"
                and item.ConceptNameCodeSequence[0].CodeValue == "121106"
            ]
            groups.append(
                {
                    "template": "1410" if planar else "1411",
                    "tracking_identifier": g.tracking_identifier,
                    "tracking_uid": g.tracking_uid,
                    "finding": code(g.finding_type),
                    "reference": seg_reference(g, planar),
                    "measurements": measurements(g),
                    "comment": comments[0] if comments else None,
                }
            )
    print(
        json.dumps(
            {
                "sop_class_uid": sr.SOPClassUID,
                "modality": sr.Modality,
                "study_uid": sr.StudyInstanceUID,
                "series_uid": sr.SeriesInstanceUID,
                "groups": groups,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
