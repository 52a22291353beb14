-- Lookup tables and encounter completion. Statements run in order; each CREATE TABLE is
-- stored in the lake, each CREATE VIEW lives only for the build.

CREATE TABLE core__meta_version AS
SELECT CAST(5 AS INT) AS data_package_version;

-- The v3 ActEncounterCode value set (http://hl7.org/fhir/r4/v3/ActEncounterCode/vs.html).
CREATE TABLE core__fhir_act_encounter_code_v3 AS
SELECT * FROM (VALUES
    ('AMB', 'ambulatory'),
    ('EMER', 'emergency'),
    ('FLD', 'field'),
    ('HH', 'home health'),
    ('IMP', 'inpatient encounter'),
    ('ACUTE', 'inpatient acute'),
    ('NONAC', 'inpatient non-acute'),
    ('OBSENC', 'observation encounter'),
    ('PRENC', 'pre-admission'),
    ('SS', 'short stay'),
    ('VR', 'virtual')
) AS t (code, display);

-- Encounter.class codes to the v3 code they stand for: each v3 code to itself, and the
-- legacy v2-0004 patient classes.
CREATE TABLE core__fhir_mapping_expected_act_encounter_code_v3 AS
SELECT code AS expected, code AS found,
    'http://terminology.hl7.org/CodeSystem/v3-ActCode' AS found_system
FROM core__fhir_act_encounter_code_v3
UNION ALL
SELECT * FROM (VALUES
    ('EMER', 'E', 'http://terminology.hl7.org/CodeSystem/v2-0004'),
    ('IMP', 'I', 'http://terminology.hl7.org/CodeSystem/v2-0004'),
    ('AMB', 'O', 'http://terminology.hl7.org/CodeSystem/v2-0004'),
    ('PRENC', 'P', 'http://terminology.hl7.org/CodeSystem/v2-0004'),
    ('AMB', 'R', 'http://terminology.hl7.org/CodeSystem/v2-0004')
) AS t (expected, found, found_system);

-- Which tracked encounters are complete: every resource table below was loaded by a group
-- the encounter is in, no earlier than the encounter's first export. Export times compare
-- as instants. An encounter with no completion row is not tracked (no row here). A working
-- table: core__encounter reads it, and it is dropped when the study is built.
CREATE TABLE core__tmp_completion AS
WITH ece AS (
    SELECT encounter_id, group_name,
        min(fhir_instant(export_time)) OVER (PARTITION BY encounter_id) AS earliest
    FROM etl__completion_encounters
),
loaded AS (
    SELECT ece.encounter_id, c.table_name, ece.earliest <= fhir_instant(c.export_time) AS ok
    FROM ece
    LEFT JOIN etl__completion AS c ON c.group_name = ece.group_name
)
SELECT
    encounter_id AS id,
    coalesce(
        bool_or(ok AND table_name = 'allergyintolerance')
        AND bool_or(ok AND table_name = 'condition')
        AND bool_or(ok AND table_name = 'diagnosticreport')
        AND bool_or(ok AND table_name = 'documentreference')
        AND bool_or(ok AND table_name = 'episodeofcare')
        AND bool_or(ok AND table_name = 'medicationrequest')
        AND bool_or(ok AND table_name = 'medicationdispense')
        AND bool_or(ok AND table_name = 'observation')
        AND bool_or(ok AND table_name = 'procedure')
        AND bool_or(ok AND table_name = 'servicerequest')
        AND bool_or(ok AND table_name = 'specimen'),
        false
    ) AS is_complete
FROM loaded
GROUP BY encounter_id;

CREATE TABLE core__incomplete_encounter AS
SELECT id FROM core__tmp_completion WHERE NOT is_complete;
