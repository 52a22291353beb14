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

-- Names of code systems and the system URIs (or OIDs, or bare names) they are written
-- with; and US Core profiles and value sets by name. Static, as cumulus-library's.
CREATE TABLE core__fhir_mapping_code_system_uri AS
SELECT * FROM (VALUES
    ('ICD10', 'http://hl7.org/fhir/sid/icd-10-cm'),
    ('ICD10', '2.16.840.1.113883.6.90'),
    ('ICD10', 'ICD10'),
    ('ICD10', 'ICD-10'),
    ('ICD10', 'ICD-10-CM'),
    ('ICD10', 'ICD10-CM'),
    ('ICD9', 'http://hl7.org/fhir/sid/icd-9-cm'),
    ('ICD9', '2.16.840.1.113883.6.103'),
    ('ICD9', 'ICD9'),
    ('ICD9', 'ICD-9'),
    ('ICD9', 'ICD-9-CM'),
    ('ICD9', 'ICD9-CM'),
    ('SNOMED', 'http://snomed.info/sct'),
    ('SNOMED', '2.16.840.1.113883.6.96'),
    ('SNOMED', 'SNOMEDCT'),
    ('SNOMED', 'SNOMEDCT_US'),
    ('SNOMED', 'SNOMED'),
    ('LOINC', 'http://loinc.org'),
    ('LOINC', '2.16.840.1.113883.6.1'),
    ('LOINC', 'LOINC'),
    ('LOINC', 'LNC'),
    ('RXNORM', 'http://www.nlm.nih.gov/research/umls/'),
    ('RXNORM', '2.16.840.1.113883.6.88'),
    ('RXNORM', 'RXNORM'),
    ('UMLS', 'http://www.nlm.nih.gov/research/umls/'),
    ('UMLS', 'UMLS'),
    ('CPT', 'http://www.ama-assn.org/go/cpt'),
    ('CPT', 'CPT')
) AS t (code_system, uri);

CREATE TABLE core__fhir_mapping_resource_uri AS
SELECT * FROM (VALUES
    ('Patient', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'),
    ('Gender', 'http://hl7.org/fhir/ValueSet/administrative-gender'),
    ('Race', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race'),
    ('Ethnicity', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity'),
    ('PostalCode', 'http://hl7.org/fhir/datatypes-definitions.html#Address.postalCode'),
    ('PatientClass', 'http://terminology.hl7.org/CodeSystem/v2-0004'),
    ('Encounter', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter'),
    ('EncounterStatus', 'http://hl7.org/fhir/ValueSet/encounter-status'),
    ('EncounterType', 'http://hl7.org/fhir/ValueSet/encounter-type'),
    ('EncounterReason', 'http://hl7.org/fhir/ValueSet/encounter-reason'),
    ('EncounterCode', 'http://terminology.hl7.org/ValueSet/v3-ActEncounterCode'),
    ('EncounterPriority', 'http://terminology.hl7.org/CodeSystem/v3-ActPriority'),
    ('EncounterLocationStatus', 'http://hl7.org/fhir/ValueSet/encounter-location-status'),
    ('Period', 'http://hl7.org/fhir/datatypes.html#Period'),
    ('Coding', 'http://hl7.org/fhir/datatypes.html#Coding'),
    ('DocumentReference', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference'),
    ('DocumentType', 'http://hl7.org/fhir/ValueSet/c80-doc-typecodes'),
    ('Condition', 'http://hl7.org/fhir/condition-definitions.html'),
    ('ConditionCode', 'http://hl7.org/fhir/ValueSet/condition-code'),
    ('ConditionCategory', 'http://hl7.org/fhir/ValueSet/condition-category'),
    ('ObservationLab', 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab'),
    ('ObservationCode', 'http://hl7.org/fhir/ValueSet/observation-codes'),
    ('ObservationCategory', 'http://hl7.org/fhir/ValueSet/observation-category'),
    ('ObservationInterpretation', 'http://hl7.org/fhir/ValueSet/observation-interpretation'),
    ('ObservationValue', 'http://hl7.org/fhir/observation-definitions.html#Observation.value_x_'),
    ('VitalSign', 'http://hl7.org/fhir/observation-vitalsigns.html')
) AS t (resource, uri);

-- Which tracked encounters are complete: every resource table below was loaded by a group
-- the encounter is in, no earlier than the encounter's first export. Export times compare
-- as instants. An encounter with no completion row is not tracked (no row here). A working
-- table: core__encounter reads it, and it is dropped when the study is built.
CREATE TABLE core__tmp_completion AS
-- When each group last loaded each table: a row per group, however many encounters.
WITH loads AS (
    SELECT group_name,
        max(CASE WHEN table_name = 'allergyintolerance' THEN fhir_instant(export_time) END) AS allergyintolerance,
        max(CASE WHEN table_name = 'condition' THEN fhir_instant(export_time) END) AS condition,
        max(CASE WHEN table_name = 'diagnosticreport' THEN fhir_instant(export_time) END) AS diagnosticreport,
        max(CASE WHEN table_name = 'documentreference' THEN fhir_instant(export_time) END) AS documentreference,
        max(CASE WHEN table_name = 'episodeofcare' THEN fhir_instant(export_time) END) AS episodeofcare,
        max(CASE WHEN table_name = 'medicationrequest' THEN fhir_instant(export_time) END) AS medicationrequest,
        max(CASE WHEN table_name = 'medicationdispense' THEN fhir_instant(export_time) END) AS medicationdispense,
        max(CASE WHEN table_name = 'observation' THEN fhir_instant(export_time) END) AS observation,
        max(CASE WHEN table_name = 'procedure' THEN fhir_instant(export_time) END) AS procedure,
        max(CASE WHEN table_name = 'servicerequest' THEN fhir_instant(export_time) END) AS servicerequest,
        max(CASE WHEN table_name = 'specimen' THEN fhir_instant(export_time) END) AS specimen
    FROM etl__completion
    GROUP BY group_name
)
-- A table is complete for an encounter when one of its groups loaded it no earlier than
-- the encounter's first export: the latest load over its groups is no earlier.
SELECT
    ece.encounter_id AS id,
    coalesce(
        max(l.allergyintolerance) >= min(fhir_instant(ece.export_time))
        AND max(l.condition) >= min(fhir_instant(ece.export_time))
        AND max(l.diagnosticreport) >= min(fhir_instant(ece.export_time))
        AND max(l.documentreference) >= min(fhir_instant(ece.export_time))
        AND max(l.episodeofcare) >= min(fhir_instant(ece.export_time))
        AND max(l.medicationrequest) >= min(fhir_instant(ece.export_time))
        AND max(l.medicationdispense) >= min(fhir_instant(ece.export_time))
        AND max(l.observation) >= min(fhir_instant(ece.export_time))
        AND max(l.procedure) >= min(fhir_instant(ece.export_time))
        AND max(l.servicerequest) >= min(fhir_instant(ece.export_time))
        AND max(l.specimen) >= min(fhir_instant(ece.export_time)),
        false
    ) AS is_complete
FROM etl__completion_encounters AS ece
LEFT JOIN loads AS l ON l.group_name = ece.group_name
GROUP BY ece.encounter_id;

CREATE TABLE core__incomplete_encounter AS
SELECT id FROM core__tmp_completion WHERE NOT is_complete;
