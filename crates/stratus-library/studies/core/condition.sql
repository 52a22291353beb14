-- Conditions: one row per code coding and category coding. Not filtered by encounter
-- completion (cumulus-library does not either). Unlike cumulus-library, abatementDateTime is
-- filled in: its builder looks the field up under a misspelled name, so it is always NULL
-- there (see docs/library.md).

CREATE TABLE core__condition_dn_category AS
WITH cc AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS cc
    FROM (
        SELECT id, category AS arr,
            unnest(range(1, coalesce(CAST(array_length(category) AS BIGINT), 0) + 1)) AS r
        FROM condition
    )
),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__condition_dn_code AS
WITH cc AS (SELECT id, 0 AS "row", code AS cc FROM condition),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__condition_dn_clinicalstatus AS
WITH cc AS (SELECT id, 0 AS "row", "clinicalStatus" AS cc FROM condition),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/condition-clinical$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__condition_dn_verificationstatus AS
WITH cc AS (SELECT id, 0 AS "row", "verificationStatus" AS cc FROM condition),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/condition-ver-status$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__condition AS
WITH base AS (
    SELECT c.id, c.subject['reference'] AS subject_ref, c.encounter['reference'] AS encounter_ref,
        fhir_timestamp(c."recordedDate") AS recorded, fhir_date(c."recordedDate") AS recorded_day,
        fhir_timestamp(c."onsetDateTime") AS onset, fhir_timestamp(c."abatementDateTime") AS abatement,
        cs.code AS clinical, vs.code AS verification
    FROM condition AS c
    LEFT JOIN core__condition_dn_clinicalstatus AS cs ON cs.id = c.id
    LEFT JOIN core__condition_dn_verificationstatus AS vs ON vs.id = c.id
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
LEFT JOIN core__condition_dn_code AS cc ON cc.id = b.id;
