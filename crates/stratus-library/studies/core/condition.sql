-- Conditions: one row per code coding and category coding. Not filtered by encounter
-- completion (cumulus-library does not either). Unlike cumulus-library, abatementDateTime is
-- filled in: its builder looks the field up under a misspelled name, so it is always NULL
-- there (see docs/library.md).

CREATE TABLE core__condition AS
WITH base AS (
    SELECT c.id, c.subject['reference'] AS subject_ref, c.encounter['reference'] AS encounter_ref,
        fhir_timestamp(c."recordedDate") AS recorded, fhir_date(c."recordedDate") AS recorded_day,
        fhir_timestamp(c."onsetDateTime") AS onset, fhir_timestamp(c."abatementDateTime") AS abatement,
        cs.code AS clinical, vs.code AS verification
    FROM condition AS c
    LEFT JOIN core__condition_dn_clinical_status AS cs ON cs.id = c.id
    LEFT JOIN core__condition_dn_verification_status AS vs ON vs.id = c.id
    WHERE vs.code IS NULL OR vs.code <> 'entered-in-error'
)
SELECT DISTINCT
    b.id,
    cat.code AS category_code, cat.system AS category_system, cat.display AS category_display,
    cc.code, cc.system, cc.display AS code_display,
    b.subject_ref,
    b.encounter_ref,
    concat('Condition/', b.id) AS condition_ref,
    b.recorded AS "recordedDate",
    CAST(date_trunc('week', b.recorded_day) AS DATE) AS "recordedDate_week",
    CAST(date_trunc('month', b.recorded_day) AS DATE) AS "recordedDate_month",
    CAST(date_trunc('year', b.recorded_day) AS DATE) AS "recordedDate_year",
    b.onset AS "onsetDateTime",
    b.abatement AS "abatementDateTime",
    b.clinical AS "clinicalStatus_code",
    b.verification AS "verificationStatus_code"
FROM base AS b
LEFT JOIN core__condition_dn_category AS cat ON cat.id = b.id
LEFT JOIN core__condition_codable_concepts_all AS cc ON cc.id = b.id;
