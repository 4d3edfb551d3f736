"""Check coded concepts against the code tables pydicom ships (DICOM, SNOMED CT, LOINC,
UCUM), independently of segnode's code.

Reads JSON from stdin: [{"value", "scheme", "meaning"}, ...]. Prints JSON: a list of the
problems found (empty when every code is known with the same meaning). A meaning matches
case-insensitively, also when the table adds a SNOMED semantic tag such as
"(observable entity)". A UCUM unit the table holds only inside compound units (pydicom
lists "ml/min" but not "ml") matches when some compound "<unit>/..." has a meaning that
starts with ours followed by " per".
"""

import json
import re
import sys

from pydicom.sr._concepts_dict import concepts


def meanings(scheme, value):
    return [
        m for kw in concepts.get(scheme, {}).values() for v, (m, _) in kw.items() if v == value
    ]


def same(ours, theirs):
    ours, theirs = ours.lower(), theirs.lower()
    return ours == theirs or re.sub(r" \([^)]*\)$", "", theirs) == ours


problems = []
for c in json.load(sys.stdin):
    found = meanings(c["scheme"], c["value"])
    if any(same(c["meaning"], m) for m in found):
        continue
    if not found and c["scheme"] == "UCUM":
        compound = [
            m
            for kw in concepts["UCUM"].values()
            for v, (m, _) in kw.items()
            if v.startswith(c["value"] + "/")
        ]
        if any(m.lower().startswith(c["meaning"].lower() + " per") for m in compound):
            continue
    problems.append({"code": c, "table_meanings": found})
print(json.dumps(problems))
