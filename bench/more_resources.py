#!/usr/bin/env python3
"""Writes FHIR R4 NDJSON of the resource types the Synthea sample lacks (ServiceRequest,
Specimen, MedicationDispense, EpisodeOfCare, Location, PractitionerRole, and
MedicationRequests with dosage instructions) for the patients of a Synthea folder, so that
the core tables and count cubes that read them can be compared with cumulus-library.
Deterministic: the same input gives the same output. The values are made up but shaped as
EHRs write them: partial dates, contained and referenced medications, tapers (several
dosage steps), dose ranges, entered-in-error rows, codings in several systems.

Usage: more_resources.py SYNTHEA_DIR OUT_DIR"""

import gzip
import json
import random
import sys
from pathlib import Path


def patients(folder: Path):
    for f in sorted(folder.glob("Patient*.ndjson*")):
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)["id"]


def cc(*codings, text=None):
    out = {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings]}
    if text:
        out["text"] = text
    return out


SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SR_CATEGORY = [
    (SNOMED, "108252007", "Laboratory procedure"),
    (SNOMED, "363679005", "Imaging"),
    (SNOMED, "409063005", "Counselling"),
]
SR_CODE = [
    (LOINC, "24323-8", "Comprehensive metabolic panel"),
    (LOINC, "58410-2", "CBC panel"),
    (SNOMED, "399208008", "Chest X-ray"),
]
SPECIMEN = [
    ("http://terminology.hl7.org/CodeSystem/v2-0487", "BLD", "Whole blood"),
    ("http://terminology.hl7.org/CodeSystem/v2-0487", "UR", "Urine"),
]
MEDS = [
    (RXNORM, "197361", "Amlodipine 5 MG Oral Tablet"),
    (RXNORM, "310798", "Hydrochlorothiazide 25 MG Oral Tablet"),
    (RXNORM, "312617", "predniSONE 5 MG Oral Tablet"),
]
TIMING = ["BID", "TID", "QD", None]
DISPENSE_CATEGORY = [
    ("http://terminology.hl7.org/fhir/CodeSystem/medicationdispense-category", "outpatient", "Outpatient"),
    ("http://terminology.hl7.org/fhir/CodeSystem/medicationdispense-category", "community", "Community"),
]
DISPENSE_TYPE = [
    ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "FF", "First Fill"),
    ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "RF", "Refill"),
]
ROUTE = (SNOMED, "26643006", "Oral route")


def dosage(rng, steps):
    out = []
    for n in range(steps):
        timing = rng.choice(TIMING)
        d = {
            "sequence": n + 1,
            "text": f"take {n + 1} tablet(s)",
            "asNeededBoolean": rng.random() < 0.3,
            "route": cc(ROUTE),
            "timing": {
                "repeat": {
                    "frequency": rng.choice([1, 2, 3]),
                    "period": 1,
                    "periodUnit": "d",
                    "boundsPeriod": {"start": "2023-0%d-01" % (n + 1)},
                }
            },
            "doseAndRate": [],
        }
        if timing:
            d["timing"]["code"] = cc(("http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", timing, timing), text=timing)
        if rng.random() < 0.5:
            d["doseAndRate"].append({
                "type": cc(("http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered"), text="ordered"),
                "doseQuantity": {"value": n + 1, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
            })
        else:
            d["doseAndRate"].append({
                "doseRange": {"low": {"value": 1, "unit": "mg"}, "high": {"value": 2, "unit": "mg"}},
            })
        out.append(d)
    return out


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    files = {t: [] for t in ["ServiceRequest", "Specimen", "MedicationDispense", "MedicationRequest",
                             "EpisodeOfCare", "Location", "PractitionerRole", "Medication"]}
    files["Medication"].append({"resourceType": "Medication", "id": "med-ref-1", "code": cc(MEDS[1])})
    for i in range(12):
        files["Location"].append({
            "resourceType": "Location", "id": f"loc-{i}", "status": "active",
            "name": f"Clinic {i % 4}", "alias": [f"C{i}"] if i % 2 else None,
            "identifier": [{"system": "urn:example:loc", "value": f"L{i}"}],
            "type": [cc(("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "HOSP", "Hospital"))],
            "managingOrganization": {"reference": "Organization/org-1"},
        })
        files["PractitionerRole"].append({
            "resourceType": "PractitionerRole", "id": f"role-{i}", "active": True,
            "identifier": [{"system": "urn:example:role", "value": f"R{i}"}],
            "practitioner": {"reference": f"Practitioner/pr-{i}"},
            "organization": {"reference": "Organization/org-1"},
            "code": [cc((SNOMED, "158965000", "Medical practitioner"))],
            "specialty": [cc((SNOMED, "394814009", "General practice"))],
            "location": [{"reference": f"Location/loc-{i}"}],
        })
    for n, pid in enumerate(patients(src)):
        subject = {"reference": f"Patient/{pid}"}
        month = 1 + n % 6
        for k in range(2):
            files["ServiceRequest"].append({
                "resourceType": "ServiceRequest", "id": f"sr-{n}-{k}",
                "status": "entered-in-error" if n % 17 == 0 and k else "active",
                "intent": "order", "subject": subject,
                "category": [cc(rng.choice(SR_CATEGORY))], "code": cc(rng.choice(SR_CODE)),
                "authoredOn": f"2023-0{month}-1{k}T10:00:00-05:00",
                "occurrenceDateTime": f"2023-0{month}-2{k}",
                "specimen": [{"reference": f"Specimen/sp-{n}"}],
            })
        files["Specimen"].append({
            "resourceType": "Specimen", "id": f"sp-{n}", "status": "available",
            "subject": subject, "type": cc(SPECIMEN[n % 2]),
        })
        files["EpisodeOfCare"].append({
            "resourceType": "EpisodeOfCare", "id": f"eoc-{n}", "status": "finished",
            "patient": subject, "type": [cc((SNOMED, "225358003", "Wound care"))],
            "period": {"start": f"2022-0{month}-01", "end": f"2022-0{month}-15T12:00:00+02:00"},
        })
        steps = 1 + n % 3
        med = MEDS[n % 3]
        mr = {
            "resourceType": "MedicationRequest", "id": f"mr-{n}", "status": "active",
            "intent": "order", "subject": subject, "authoredOn": f"2023-0{month}-05",
            "medicationCodeableConcept": cc(med), "dosageInstruction": dosage(rng, steps),
        }
        files["MedicationRequest"].append(mr)
        md = {
            "resourceType": "MedicationDispense", "id": f"md-{n}",
            "status": "entered-in-error" if n % 23 == 0 else "completed",
            "subject": subject,
            "category": cc(DISPENSE_CATEGORY[n % 2]), "type": cc(DISPENSE_TYPE[n % 2]),
            "quantity": {"value": 30, "unit": "tablet"}, "daysSupply": {"value": 30, "unit": "d"},
            "whenPrepared": f"2023-0{month}-06T09:00:00Z",
            "whenHandedOver": [f"2023-0{month}", f"2023-0{month}-07", f"2023-0{month}-07T16:30:00-04:00"][n % 3],
            "authorizingPrescription": [{"reference": f"MedicationRequest/mr-{n}"}],
            "performer": [{"actor": {"reference": "Practitioner/pr-1"}}],
            "dosageInstruction": dosage(rng, steps),
        }
        if n % 3 == 0:
            md["medicationCodeableConcept"] = cc(med)
        elif n % 3 == 1:
            md["contained"] = [{"resourceType": "Medication", "id": "m1", "code": cc(med)}]
            md["medicationReference"] = {"reference": "#m1"}
        else:
            md["medicationReference"] = {"reference": "Medication/med-ref-1"}
        files["MedicationDispense"].append(md)
    for t, rows in files.items():
        with open(out / f"{t}.more.ndjson", "w") as fh:
            for r in rows:
                fh.write(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n")


if __name__ == "__main__":
    main()
