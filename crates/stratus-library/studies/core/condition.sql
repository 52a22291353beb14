-- Conditions: one row per code coding and category coding. Not filtered by encounter
-- completion (cumulus-library does not either). Unlike cumulus-library, abatementDateTime is
-- filled in: its builder looks the field up under a misspelled name, so it is always NULL
-- there (see docs/library.md). The statuses and codings are each condition's own
-- (stratus-library src/lists.rs): the rows cumulus-library's joins to the code tables give.

CREATE TABLE core__condition AS
WITH base AS (
    SELECT c.id, c.subject['reference'] AS subject_ref, c.encounter['reference'] AS encounter_ref,
        fhir_timestamp(c."recordedDate") AS recorded, fhir_date(c."recordedDate") AS recorded_day,
        fhir_timestamp(c."onsetDateTime") AS onset, fhir_timestamp(c."abatementDateTime") AS abatement,
        pick_coding(c."clinicalStatus", 'core__condition_dn_clinical_status')['code'] AS clinical,
        pick_coding(c."verificationStatus", 'core__condition_dn_verification_status')['code']
            AS verification,
        combinations(codings(c.category, 'code,system,display'),
            codings(c.code, 'code,system,display')) AS picks
    FROM condition AS c
),
flat AS (
    SELECT id, subject_ref, encounter_ref, recorded, recorded_day, onset, abatement, clinical,
        verification, unnest(picks) AS x
    FROM base
    WHERE verification IS NULL OR verification <> 'entered-in-error'
)
SELECT
    b.id,
    b.x['c1']['code'] AS category_code, b.x['c1']['system'] AS category_system,
    b.x['c1']['display'] AS category_display,
    b.x['c2']['code'] AS code, b.x['c2']['system'] AS system, b.x['c2']['display'] AS code_display,
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
FROM flat AS b;
