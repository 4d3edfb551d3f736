"""Check DICOM audit messages (PS3.15 A.5.1 AuditMessage) for the elements and attributes
the schema requires, in its order, with its enumerated values. Reads one XML message per
line on stdin; prints one line per problem; exits 1 if there is any."""

import sys
import xml.etree.ElementTree as ET
from datetime import datetime

CODED = ("csd-code", "codeSystemName", "originalText")


def coded(el, where, problems):
    for attr in CODED:
        if not el.get(attr):
            problems.append(f"{where}/{el.tag}: missing {attr}")


def check(xml, n, problems):
    where = f"message {n}"
    try:
        root = ET.fromstring(xml.lstrip("\ufeff").encode("utf-8"))
    except ET.ParseError as e:
        problems.append(f"{where}: not well-formed XML: {e}")
        return
    if root.tag != "AuditMessage":
        problems.append(f"{where}: root is {root.tag}, not AuditMessage")
        return
    tags = [c.tag for c in root]
    # EventIdentification, ActiveParticipant+, AuditSourceIdentification,
    # ParticipantObjectIdentification*
    order = {"EventIdentification": 0, "ActiveParticipant": 1,
             "AuditSourceIdentification": 2, "ParticipantObjectIdentification": 3}
    if any(t not in order for t in tags):
        problems.append(f"{where}: unknown children {tags}")
    if [order.get(t, 9) for t in tags] != sorted(order.get(t, 9) for t in tags):
        problems.append(f"{where}: children out of order {tags}")
    for t, lo, hi in (("EventIdentification", 1, 1), ("ActiveParticipant", 1, 99),
                      ("AuditSourceIdentification", 1, 1)):
        if not lo <= tags.count(t) <= hi:
            problems.append(f"{where}: {tags.count(t)} {t}")
    for ev in root.findall("EventIdentification"):
        if ev.get("EventActionCode") not in (None, "C", "R", "U", "D", "E"):
            problems.append(f"{where}: EventActionCode {ev.get('EventActionCode')}")
        if ev.get("EventOutcomeIndicator") not in ("0", "4", "8", "12"):
            problems.append(f"{where}: EventOutcomeIndicator {ev.get('EventOutcomeIndicator')}")
        try:
            datetime.fromisoformat(ev.get("EventDateTime", "").replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{where}: EventDateTime {ev.get('EventDateTime')!r}")
        kids = [c.tag for c in ev]
        if kids[:1] != ["EventID"] or kids.count("EventID") != 1:
            problems.append(f"{where}: EventIdentification children {kids}")
        for c in ev:
            if c.tag in ("EventID", "EventTypeCode"):
                coded(c, where, problems)
            elif c.tag != "EventOutcomeDescription":
                problems.append(f"{where}: unexpected {c.tag} in EventIdentification")
    for ap in root.findall("ActiveParticipant"):
        if not ap.get("UserID"):
            problems.append(f"{where}: ActiveParticipant without UserID")
        if ap.get("UserIsRequestor") not in ("true", "false"):
            problems.append(f"{where}: UserIsRequestor {ap.get('UserIsRequestor')}")
        if (ap.get("NetworkAccessPointID") is None) != (ap.get("NetworkAccessPointTypeCode") is None):
            problems.append(f"{where}: NetworkAccessPointID without its type code, or back")
        if ap.get("NetworkAccessPointTypeCode") not in (None, "1", "2", "3", "4", "5"):
            problems.append(f"{where}: NetworkAccessPointTypeCode {ap.get('NetworkAccessPointTypeCode')}")
        for c in ap:
            if c.tag != "RoleIDCode":
                problems.append(f"{where}: unexpected {c.tag} in ActiveParticipant")
            coded(c, where, problems)
    for src in root.findall("AuditSourceIdentification"):
        if not src.get("AuditSourceID"):
            problems.append(f"{where}: AuditSourceIdentification without AuditSourceID")
        for c in src:
            if c.tag != "AuditSourceTypeCode":
                problems.append(f"{where}: unexpected {c.tag} in AuditSourceIdentification")
    for po in root.findall("ParticipantObjectIdentification"):
        if not po.get("ParticipantObjectID"):
            problems.append(f"{where}: ParticipantObjectIdentification without ID")
        if po.get("ParticipantObjectTypeCode") not in ("1", "2", "3", "4"):
            problems.append(f"{where}: ParticipantObjectTypeCode {po.get('ParticipantObjectTypeCode')}")
        role = po.get("ParticipantObjectTypeCodeRole")
        if role is not None and not (role.isdigit() and 1 <= int(role) <= 24):
            problems.append(f"{where}: ParticipantObjectTypeCodeRole {role}")
        kids = [c.tag for c in po]
        if kids[:1] != ["ParticipantObjectIDTypeCode"]:
            problems.append(f"{where}: ParticipantObjectIdentification children {kids}")
        else:
            coded(po[0], where, problems)
        for s in po.findall("SOPClass"):
            if not s.get("UID") or not (s.get("NumberOfInstances") or "").isdigit():
                problems.append(f"{where}: SOPClass {s.attrib}")


def main():
    problems = []
    n = 0
    for line in sys.stdin:
        line = line.strip()
        if line:
            n += 1
            check(line, n, problems)
    for p in problems:
        print(p)
    print(f"{n} message(s), {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1 if problems or n == 0 else 0)


if __name__ == "__main__":
    main()
