-- Encounters: one coding picked per coded field (by the system priority lists of
-- cumulus-library's core), the class mapped to v3 ActEncounterCode, the patient's
-- demographics, and only encounters that are complete or not tracked. An encounter whose
-- patient is not in core__patient is left out.

-- Each encounter's own picks, discharge codings, episodes and participants are read in one
-- pass over it (stratus-library src/lists.rs): the rows cumulus-library's joins to the
-- code tables and unnested lists give, where a LEFT JOIN of 3.7 million encounters to each
-- was a spilling sort apiece at 100,000 patients. An empty or missing list gives one NULL,
-- as the LEFT JOIN did. Every join here has a small side (the incomplete encounters, the
-- patients, the class map) and hashes it even in a build that sorts and merges
-- (src/joins.rs), so the rows stream through once, picks and all, and nothing is sorted.
CREATE TABLE core__encounter AS
WITH base AS (
    SELECT e.id, e.status, e."class"['code'] AS class_code, e."class"['system'] AS class_system,
        e."class"['display'] AS class_display, fhir_date(e.period['start']) AS start_day,
        fhir_date(e.period['end']) AS end_day, e.subject['reference'] AS subject_ref,
        e."serviceProvider"['reference'] AS service_provider,
        pick_coding(e.type, 'core__encounter_dn_type') AS t,
        pick_coding(e."serviceType", 'core__encounter_dn_servicetype') AS st,
        pick_coding(e.priority, 'core__encounter_dn_priority') AS pr,
        pick_coding(e."reasonCode", 'core__encounter_dn_reasoncode') AS rc,
        combinations(coding_rows(e.hospitalization['dischargeDisposition']),
            all_texts(e."episodeOfCare", 'reference'),
            all_texts(e.participant, 'individual.reference')) AS lists
    FROM encounter AS e
    -- Not a join to core__tmp_completion (one row per encounter, is_complete never NULL):
    -- the incomplete ones are few, and a join to them hashes where one to every
    -- encounter would sort both sides in a large build.
    WHERE NOT EXISTS (SELECT 1 FROM core__incomplete_encounter AS i WHERE i.id = e.id)
        AND (e.status IS NULL OR e.status <> 'entered-in-error')
),
classes AS (
    SELECT m.found, m.found_system, v.code, v.display
    FROM core__fhir_mapping_expected_act_encounter_code_v3 AS m
    INNER JOIN core__fhir_act_encounter_code_v3 AS v ON v.code = m.expected
),
picked AS (
    SELECT
        b.id,
        b.status,
        coalesce(classes.code, b.class_code) AS class_code,
        coalesce(classes.display, b.class_display) AS class_display,
        b.t, b.st, b.pr, b.rc,
        fhir_age(p.birthdate, b.start_day) AS age_at_visit,
        p.gender, p.race_display, p.ethnicity_display, p.postalcode_3,
        b.start_day, b.end_day, b.subject_ref, b.service_provider, b.lists
    FROM base AS b
    INNER JOIN core__patient AS p ON p.subject_ref = b.subject_ref
    LEFT JOIN classes ON classes.found = b.class_code AND classes.found_system = b.class_system
),
flat AS (
    SELECT id, status, class_code, class_display, t, st, pr, rc, age_at_visit, gender,
        race_display, ethnicity_display, postalcode_3, start_day, end_day, subject_ref,
        service_provider, unnest(lists) AS x
    FROM picked
)
SELECT
    j.id,
    status,
    class_code,
    class_display,
    t['code'] AS type_code, t['system'] AS type_system, t['display'] AS type_display,
    st['code'] AS "serviceType_code", st['system'] AS "serviceType_system",
    st['display'] AS "serviceType_display",
    pr['code'] AS priority_code, pr['system'] AS priority_system,
    pr['display'] AS priority_display,
    rc['code'] AS "reasonCode_code", rc['system'] AS "reasonCode_system",
    rc['display'] AS "reasonCode_display",
    x['c1']['code'] AS "dischargeDisposition_code",
    x['c1']['system'] AS "dischargeDisposition_system",
    x['c1']['display'] AS "dischargeDisposition_display",
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
    x['c2'] AS "episodeOfCare_ref",
    x['c3'] AS participant_ref,
    service_provider AS "serviceProvider_ref",
    concat('Encounter/', j.id) AS encounter_ref
FROM flat AS j;
