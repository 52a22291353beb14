-- Encounters: one coding picked per coded field (by the system priority lists of
-- cumulus-library's core), the class mapped to v3 ActEncounterCode, the patient's
-- demographics, and only encounters that are complete or not tracked. An encounter whose
-- patient is not in core__patient is left out.

-- One row per encounter with its picked codings, so that core__encounter joins one table
-- of them rather than four (each join of 3.7 million encounters held gigabytes). Dropped
-- at the end of the build, as every <prefix>__tmp_ table is.
CREATE TABLE core__encounter_tmp_codes AS
SELECT
    id,
    max(CASE WHEN field = 'type' THEN code END) AS type_code,
    max(CASE WHEN field = 'type' THEN system END) AS type_system,
    max(CASE WHEN field = 'type' THEN display END) AS type_display,
    max(CASE WHEN field = 'serviceType' THEN code END) AS servicetype_code,
    max(CASE WHEN field = 'serviceType' THEN system END) AS servicetype_system,
    max(CASE WHEN field = 'serviceType' THEN display END) AS servicetype_display,
    max(CASE WHEN field = 'priority' THEN code END) AS priority_code,
    max(CASE WHEN field = 'priority' THEN system END) AS priority_system,
    max(CASE WHEN field = 'priority' THEN display END) AS priority_display,
    max(CASE WHEN field = 'reasonCode' THEN code END) AS reasoncode_code,
    max(CASE WHEN field = 'reasonCode' THEN system END) AS reasoncode_system,
    max(CASE WHEN field = 'reasonCode' THEN display END) AS reasoncode_display
FROM (
    SELECT id, 'type' AS field, code, system, display FROM core__encounter_dn_type
    UNION ALL
    SELECT id, 'serviceType', code, system, display FROM core__encounter_dn_servicetype
    UNION ALL
    SELECT id, 'priority', code, system, display FROM core__encounter_dn_priority
    UNION ALL
    SELECT id, 'reasonCode', code, system, display FROM core__encounter_dn_reasoncode
)
GROUP BY id;

-- One row per participant and per episode of care, apart from the flat columns: joining
-- the lists in, then unnesting them, made every join and sort of 3.7 million encounters
-- carry whole participant lists (a single sort batch of 466 MB at 100,000 patients). An
-- encounter with an empty or missing list has no row here and gets one NULL row from the
-- LEFT JOIN below, as cumulus-library's unnest does.
CREATE TABLE core__encounter_tmp_participants AS
SELECT id, part['individual']['reference'] AS participant_ref
FROM (SELECT id, unnest(participant) AS part FROM encounter);

CREATE TABLE core__encounter_tmp_episodes AS
SELECT id, episode['reference'] AS episode_ref
FROM (SELECT id, unnest("episodeOfCare") AS episode FROM encounter);

CREATE TABLE core__encounter AS
WITH base AS (
    SELECT e.id, e.status, e."class"['code'] AS class_code, e."class"['system'] AS class_system,
        e."class"['display'] AS class_display, fhir_date(e.period['start']) AS start_day,
        fhir_date(e.period['end']) AS end_day, e.subject['reference'] AS subject_ref,
        e."serviceProvider"['reference'] AS service_provider
    FROM encounter AS e
    LEFT JOIN core__tmp_completion AS c ON c.id = e.id
    WHERE (c.is_complete IS NULL OR c.is_complete)
        AND (e.status IS NULL OR e.status <> 'entered-in-error')
),
classes AS (
    SELECT m.found, m.found_system, v.code, v.display
    FROM core__fhir_mapping_expected_act_encounter_code_v3 AS m
    INNER JOIN core__fhir_act_encounter_code_v3 AS v ON v.code = m.expected
),
joined AS (
    SELECT
        b.id,
        b.status,
        coalesce(classes.code, b.class_code) AS class_code,
        coalesce(classes.display, b.class_display) AS class_display,
        c.type_code, c.type_system, c.type_display,
        c.servicetype_code, c.servicetype_system, c.servicetype_display,
        c.priority_code, c.priority_system, c.priority_display,
        c.reasoncode_code, c.reasoncode_system, c.reasoncode_display,
        dd.code AS dischargedisposition_code, dd.system AS dischargedisposition_system,
        dd.display AS dischargedisposition_display,
        fhir_age(p.birthdate, b.start_day) AS age_at_visit,
        p.gender, p.race_display, p.ethnicity_display, p.postalcode_3,
        b.start_day, b.end_day, b.subject_ref, b.service_provider
    FROM base AS b
    INNER JOIN core__patient AS p ON p.subject_ref = b.subject_ref
    LEFT JOIN classes ON classes.found = b.class_code AND classes.found_system = b.class_system
    LEFT JOIN core__encounter_tmp_codes AS c ON c.id = b.id
    LEFT JOIN core__encounter_dn_dischargedisposition AS dd ON dd.id = b.id
)
SELECT
    j.id,
    status,
    class_code,
    class_display,
    type_code, type_system, type_display,
    servicetype_code AS "serviceType_code", servicetype_system AS "serviceType_system",
    servicetype_display AS "serviceType_display",
    priority_code, priority_system, priority_display,
    reasoncode_code AS "reasonCode_code", reasoncode_system AS "reasonCode_system",
    reasoncode_display AS "reasonCode_display",
    dischargedisposition_code AS "dischargeDisposition_code",
    dischargedisposition_system AS "dischargeDisposition_system",
    dischargedisposition_display AS "dischargeDisposition_display",
    age_at_visit,
    gender,
    race_display,
    ethnicity_display,
    postalcode_3,
    start_day AS period_start_day,
    coalesce(end_day, start_day) AS period_end_day,
    CAST(date_trunc('week', start_day) AS DATE) AS period_start_week,
    CAST(date_trunc('month', start_day) AS DATE) AS period_start_month,
    CAST(date_trunc('year', start_day) AS DATE) AS period_start_year,
    subject_ref,
    ep.episode_ref AS "episodeOfCare_ref",
    pa.participant_ref,
    service_provider AS "serviceProvider_ref",
    concat('Encounter/', j.id) AS encounter_ref
FROM joined AS j
LEFT JOIN core__encounter_tmp_participants AS pa ON pa.id = j.id
LEFT JOIN core__encounter_tmp_episodes AS ep ON ep.id = j.id;
