-- Episodes of care, service requests and specimens: their type, category and code
-- codings, dates cut to day, week, month and year, and references. Entered-in-error rows
-- are left out.

CREATE TABLE core__episodeofcare AS
WITH base AS (
    SELECT e.id, e.status, e.patient['reference'] AS patient_ref,
        fhir_timestamp(e.period['start']) AS period_start,
        fhir_timestamp(e.period['end']) AS period_end,
        fhir_date(e.period['start']) AS start_day, fhir_date(e.period['end']) AS end_day
    FROM episodeofcare AS e
    WHERE e.status IS NULL OR e.status <> 'entered-in-error'
)
SELECT
    b.id,
    b.status,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    b.period_start,
    b.start_day AS period_start_day,
    CAST(date_trunc('week', b.start_day) AS DATE) AS period_start_week,
    CAST(date_trunc('month', b.start_day) AS DATE) AS period_start_month,
    CAST(date_trunc('year', b.start_day) AS DATE) AS period_start_year,
    b.period_end,
    b.end_day AS period_end_day,
    CAST(date_trunc('week', b.end_day) AS DATE) AS period_end_week,
    CAST(date_trunc('month', b.end_day) AS DATE) AS period_end_month,
    CAST(date_trunc('year', b.end_day) AS DATE) AS period_end_year,
    concat('EpisodeOfCare/', b.id) AS episodeofcare_ref,
    b.patient_ref
FROM base AS b
LEFT JOIN core__episodeofcare_dn_type AS t ON t.id = b.id;

CREATE TABLE core__servicerequest AS
WITH base AS (
    SELECT s.id, s.status, s.intent,
        fhir_timestamp(s."occurrenceDateTime") AS occurrence,
        fhir_date(s."occurrenceDateTime") AS occurrence_day,
        fhir_timestamp(s."occurrencePeriod"['start']) AS period_start,
        fhir_timestamp(s."occurrencePeriod"['end']) AS period_end,
        fhir_date(s."occurrencePeriod"['start']) AS start_day,
        fhir_date(s."occurrencePeriod"['end']) AS end_day,
        fhir_timestamp(s."authoredOn") AS authored, fhir_date(s."authoredOn") AS authored_day,
        s.subject['reference'] AS subject_ref, s.encounter['reference'] AS encounter_ref,
        s.requester['reference'] AS requester_ref
    FROM servicerequest AS s
    WHERE s.status IS NULL OR s.status <> 'entered-in-error'
),
specimens AS (SELECT id, unnest(specimen) AS sp FROM servicerequest)
SELECT
    b.id,
    b.status,
    b.intent,
    cat.code AS category_code, cat.system AS category_system, cat.display AS category_display,
    cc.code AS code_code, cc.system AS code_system, cc.display AS code_display,
    b.occurrence AS "occurrenceDateTime",
    b.occurrence_day AS "occurrenceDateTime_day",
    CAST(date_trunc('week', b.occurrence_day) AS DATE) AS "occurrenceDateTime_week",
    CAST(date_trunc('month', b.occurrence_day) AS DATE) AS "occurrenceDateTime_month",
    CAST(date_trunc('year', b.occurrence_day) AS DATE) AS "occurrenceDateTime_year",
    b.period_start AS "occurrencePeriod_start",
    b.start_day AS "occurrencePeriod_start_day",
    CAST(date_trunc('week', b.start_day) AS DATE) AS "occurrencePeriod_start_week",
    CAST(date_trunc('month', b.start_day) AS DATE) AS "occurrencePeriod_start_month",
    CAST(date_trunc('year', b.start_day) AS DATE) AS "occurrencePeriod_start_year",
    b.period_end AS "occurrencePeriod_end",
    b.end_day AS "occurrencePeriod_end_day",
    CAST(date_trunc('week', b.end_day) AS DATE) AS "occurrencePeriod_end_week",
    CAST(date_trunc('month', b.end_day) AS DATE) AS "occurrencePeriod_end_month",
    CAST(date_trunc('year', b.end_day) AS DATE) AS "occurrencePeriod_end_year",
    b.authored AS "authoredOn",
    b.authored_day AS "authoredOn_day",
    CAST(date_trunc('week', b.authored_day) AS DATE) AS "authoredOn_week",
    CAST(date_trunc('month', b.authored_day) AS DATE) AS "authoredOn_month",
    CAST(date_trunc('year', b.authored_day) AS DATE) AS "authoredOn_year",
    concat('ServiceRequest/', b.id) AS servicerequest_ref,
    b.subject_ref,
    b.encounter_ref,
    b.requester_ref,
    sp.sp['reference'] AS specimen_ref
FROM base AS b
LEFT JOIN core__servicerequest_dn_code AS cc ON cc.id = b.id
LEFT JOIN core__servicerequest_dn_category AS cat ON cat.id = b.id
LEFT JOIN specimens AS sp ON sp.id = b.id;

CREATE TABLE core__specimen AS
SELECT
    s.id,
    s.status,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    concat('Specimen/', s.id) AS specimen_ref,
    s.subject['reference'] AS subject_ref
FROM specimen AS s
LEFT JOIN core__specimen_dn_type AS t ON t.id = s.id
WHERE s.status IS NULL OR s.status <> 'entered-in-error';
