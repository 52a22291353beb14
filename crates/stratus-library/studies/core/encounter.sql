-- Encounters: one coding picked per coded field (by the system priority lists of
-- cumulus-library's core), the class mapped to v3 ActEncounterCode, the patient's
-- demographics, and only encounters that are complete or not tracked. An encounter whose
-- patient is not in core__patient is left out.

CREATE TABLE core__encounter_dn_type AS
WITH cc AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS cc
    FROM (
        SELECT id, "type" AS arr,
            unnest(range(1, coalesce(CAST(array_length("type") AS BIGINT), 0) + 1)) AS r
        FROM encounter
    )
),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/encounter-type$'),
        (1, '^http://terminology\.hl7\.org/CodeSystem/v2-0004$'),
        (2, '^http://snomed\.info/sct$'),
        (3, '^http://www\.ama-assn\.org/go/cpt$'),
        (4, '^urn:oid:2\.16\.840\.1\.113883\.4\.642\.3\.248$'),
        (5, '^https://fhir\.cerner\.com/.*/codeSet/71$'),
        (6, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.10\.698084\.10110$'),
        (7, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.10\.698084\.18875$'),
        (8, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.10\.698084\.30$'),
        (9, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.2\.808267$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__encounter_dn_servicetype AS
WITH cc AS (SELECT id, 0 AS "row", "serviceType" AS cc FROM encounter),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/service-type$'),
        (1, '^http://snomed\.info/sct$'),
        (2, '^urn:oid:2\.16\.840\.1\.113883\.4\.642\.3\.518$'),
        (3, '^https://fhir\.cerner\.com/.*/codeSet/34$'),
        (4, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.10\.698084\.18886$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__encounter_dn_priority AS
WITH cc AS (SELECT id, 0 AS "row", priority AS cc FROM encounter),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/v3-ActPriority$'),
        (1, '^http://snomed\.info/sct$'),
        (2, '^https://fhir\.cerner\.com/.*/codeSet/3$'),
        (3, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.10\.698084\.410$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__encounter_dn_reasoncode AS
WITH cc AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS cc
    FROM (
        SELECT id, "reasonCode" AS arr,
            unnest(range(1, coalesce(CAST(array_length("reasonCode") AS BIGINT), 0) + 1)) AS r
        FROM encounter
    )
),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc),
systems AS (
    SELECT * FROM (VALUES
        (0, '^http://terminology\.hl7\.org/CodeSystem/v3-ActPriority$'),
        (1, '^http://snomed\.info/sct$'),
        (2, '^http://hl7\.org/fhir/sid/icd-10-cm$'),
        (3, '^http://hl7\.org/fhir/sid/icd-9-cm$'),
        (4, '^https://fhir\.cerner\.com/.*/nomenclature$'),
        (5, '^urn:oid:1\.2\.840\.114350\.1\.13\..*\.7\.2\.728286$')
    ) AS t (priority, pattern)
),
ranked AS (
    SELECT d.id, d."row", d.c['code'] AS code, d.c['system'] AS system,
        d.c['display'] AS display, d.c['userSelected'] AS "userSelected",
        row_number() OVER (PARTITION BY d.id ORDER BY s.priority, d.c['code']) AS n
    FROM codings AS d INNER JOIN systems AS s ON regexp_like(d.c['system'], s.pattern)
)
SELECT id, "row", code, system, display, "userSelected" FROM ranked WHERE n = 1;

CREATE TABLE core__encounter_dn_dischargedisposition AS
WITH cc AS (SELECT id, 0 AS "row", hospitalization['dischargeDisposition'] AS cc FROM encounter),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__encounter AS
WITH base AS (
    -- Narrow rows: the joins below hold them in memory, so no nested column comes along.
    SELECT e.id, e.status, e."class"['code'] AS class_code, e."class"['system'] AS class_system,
        e."class"['display'] AS class_display, fhir_date(e.period['start']) AS start_day,
        fhir_date(e.period['end']) AS end_day, e.subject['reference'] AS subject_ref,
        e."serviceProvider"['reference'] AS service_provider
    FROM encounter AS e
    LEFT JOIN completion AS c ON c.id = e.id
    WHERE (c.is_complete IS NULL OR c.is_complete)
        AND (e.status IS NULL OR e.status <> 'entered-in-error')
),
episodes AS (
    SELECT DISTINCT id, r['reference'] AS ref
    FROM (SELECT id, unnest("episodeOfCare") AS r FROM encounter)
),
participants AS (
    SELECT DISTINCT id, p['individual']['reference'] AS ref
    FROM (SELECT id, unnest(participant) AS p FROM encounter)
),
classes AS (
    SELECT m.found, m.found_system, v.code, v.display
    FROM core__fhir_mapping_expected_act_encounter_code_v3 AS m
    INNER JOIN core__fhir_act_encounter_code_v3 AS v ON v.code = m.expected
)
SELECT
    b.id,
    b.status,
    coalesce(classes.code, b.class_code) AS class_code,
    coalesce(classes.display, b.class_display) AS class_display,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    st.code AS "serviceType_code", st.system AS "serviceType_system", st.display AS "serviceType_display",
    pr.code AS priority_code, pr.system AS priority_system, pr.display AS priority_display,
    rc.code AS "reasonCode_code", rc.system AS "reasonCode_system", rc.display AS "reasonCode_display",
    dd.code AS "dischargeDisposition_code", dd.system AS "dischargeDisposition_system",
    dd.display AS "dischargeDisposition_display",
    fhir_age(p.birthdate, b.start_day) AS age_at_visit,
    p.gender,
    p.race_display,
    p.ethnicity_display,
    p.postalcode_3,
    b.start_day AS period_start_day,
    coalesce(b.end_day, b.start_day) AS period_end_day,
    CAST(date_trunc('week', b.start_day) AS DATE) AS "period_start_week",
    CAST(date_trunc('month', b.start_day) AS DATE) AS "period_start_month",
    CAST(date_trunc('year', b.start_day) AS DATE) AS "period_start_year",
    b.subject_ref,
    episodes.ref AS "episodeOfCare_ref",
    participants.ref AS participant_ref,
    b.service_provider AS "serviceProvider_ref",
    concat('Encounter/', b.id) AS encounter_ref
FROM base AS b
INNER JOIN core__patient AS p ON p.subject_ref = b.subject_ref
LEFT JOIN classes ON classes.found = b.class_code AND classes.found_system = b.class_system
LEFT JOIN core__encounter_dn_type AS t ON t.id = b.id
LEFT JOIN core__encounter_dn_servicetype AS st ON st.id = b.id
LEFT JOIN core__encounter_dn_priority AS pr ON pr.id = b.id
LEFT JOIN core__encounter_dn_reasoncode AS rc ON rc.id = b.id
LEFT JOIN core__encounter_dn_dischargedisposition AS dd ON dd.id = b.id
LEFT JOIN episodes ON episodes.id = b.id
LEFT JOIN participants ON participants.id = b.id;
