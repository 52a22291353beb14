-- Allergies and intolerances: one row per category and per reaction manifestation coding.
-- Statuses only from their own code systems; entered-in-error verifications left out.

CREATE TABLE core__allergyintolerance AS
WITH base AS (
    SELECT a.id, a."type", a.criticality, fhir_timestamp(a."recordedDate") AS recorded,
        fhir_date(a."recordedDate") AS recorded_day, a.patient['reference'] AS patient_ref,
        a.encounter['reference'] AS encounter_ref, a.category, a.reaction,
        cs.code AS clinical, vs.code AS verification
    FROM allergyintolerance AS a
    LEFT JOIN core__allergyintolerance_dn_clinical_status AS cs ON cs.id = a.id
    LEFT JOIN core__allergyintolerance_dn_verification_status AS vs ON vs.id = a.id
    WHERE vs.code IS NULL OR vs.code <> 'entered-in-error'
),
-- Positions 1..n of a list, or 1 for an empty one (its item is then NULL), so that an
-- allergy with no category or reaction keeps its row.
categories AS (
    SELECT b.*, b.category[unnest(range(1, greatest(coalesce(CAST(array_length(b.category) AS BIGINT), 0), 1) + 1))] AS one_category
    FROM base AS b
),
reactions AS (
    SELECT c.*, unnest(range(1, greatest(coalesce(CAST(array_length(c.reaction) AS BIGINT), 0), 1) + 1)) AS reaction_row
    FROM categories AS c
),
one_reaction AS (SELECT r.*, r.reaction[r.reaction_row] AS rx FROM reactions AS r),
substances AS (
    SELECT id, reaction_row, unnest(rx['substance']['coding']) AS s
    FROM (SELECT DISTINCT id, reaction_row, rx FROM one_reaction)
),
manifestations AS (
    SELECT id, reaction_row, unnest(m['coding']) AS m
    FROM (SELECT id, reaction_row, unnest(rx['manifestation']) AS m FROM (SELECT DISTINCT id, reaction_row, rx FROM one_reaction))
)
SELECT
    o.id,
    o.clinical AS "clinicalStatus_code",
    o.verification AS "verificationStatus_code",
    o."type",
    o.one_category AS category,
    o.criticality,
    cc.code AS code_code, cc.system AS code_system, cc.display AS code_display,
    o.recorded AS "recordedDate",
    CAST(date_trunc('week', o.recorded_day) AS DATE) AS "recordedDate_week",
    CAST(date_trunc('month', o.recorded_day) AS DATE) AS "recordedDate_month",
    CAST(date_trunc('year', o.recorded_day) AS DATE) AS "recordedDate_year",
    CASE WHEN o.rx IS NULL THEN CAST(NULL AS BIGINT) ELSE CAST(o.reaction_row AS BIGINT) END AS reaction_row,
    s.s['code'] AS reaction_substance_code, s.s['system'] AS reaction_substance_system,
    s.s['display'] AS reaction_substance_display,
    m.m['code'] AS reaction_manifestation_code, m.m['system'] AS reaction_manifestation_system,
    m.m['display'] AS reaction_manifestation_display,
    o.rx['severity'] AS reaction_severity,
    concat('AllergyIntolerance/', o.id) AS allergyintolerance_ref,
    o.patient_ref,
    o.encounter_ref
FROM one_reaction AS o
LEFT JOIN core__allergyintolerance_dn_code AS cc ON cc.id = o.id
LEFT JOIN substances AS s ON s.id = o.id AND s.reaction_row = o.reaction_row
LEFT JOIN manifestations AS m ON m.id = o.id AND m.reaction_row = o.reaction_row;
