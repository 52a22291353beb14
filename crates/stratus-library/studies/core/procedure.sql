-- Procedures: every category and code coding; when performed, as a time or a period. The
-- codings are each procedure's own (stratus-library src/lists.rs): the rows
-- cumulus-library's joins to the code tables and SELECT DISTINCT give, in one pass.

CREATE TABLE core__procedure AS
WITH base AS (
    SELECT p.id, p.status, fhir_timestamp(p."performedDateTime") AS performed,
        fhir_date(p."performedDateTime") AS performed_day,
        fhir_timestamp(p."performedPeriod"['start']) AS period_start,
        fhir_timestamp(p."performedPeriod"['end']) AS period_end,
        fhir_date(p."performedPeriod"['start']) AS start_day,
        fhir_date(p."performedPeriod"['end']) AS end_day,
        p.subject['reference'] AS subject_ref, p.encounter['reference'] AS encounter_ref,
        unnest(combinations(codings(p.category, 'code,system,display'),
            codings(p.code, 'code,system,display'))) AS x
    FROM procedure AS p
    WHERE p.status IS NULL OR p.status <> 'entered-in-error'
)
SELECT
    b.id,
    b.status,
    b.x['c1']['code'] AS category_code, b.x['c1']['system'] AS category_system,
    b.x['c1']['display'] AS category_display,
    b.x['c2']['code'] AS code_code, b.x['c2']['system'] AS code_system,
    b.x['c2']['display'] AS code_display,
    b.performed AS "performedDateTime",
    b.performed_day AS "performedDateTime_day",
    CAST(date_trunc('week', b.performed_day) AS DATE) AS "performedDateTime_week",
    CAST(date_trunc('month', b.performed_day) AS DATE) AS "performedDateTime_month",
    CAST(date_trunc('year', b.performed_day) AS DATE) AS "performedDateTime_year",
    b.period_start AS "performedPeriod_start",
    b.start_day AS "performedPeriod_start_day",
    CAST(date_trunc('week', b.start_day) AS DATE) AS "performedPeriod_start_week",
    CAST(date_trunc('month', b.start_day) AS DATE) AS "performedPeriod_start_month",
    CAST(date_trunc('year', b.start_day) AS DATE) AS "performedPeriod_start_year",
    b.period_end AS "performedPeriod_end",
    b.end_day AS "performedPeriod_end_day",
    CAST(date_trunc('week', b.end_day) AS DATE) AS "performedPeriod_end_week",
    CAST(date_trunc('month', b.end_day) AS DATE) AS "performedPeriod_end_month",
    CAST(date_trunc('year', b.end_day) AS DATE) AS "performedPeriod_end_year",
    concat('Procedure/', b.id) AS procedure_ref,
    b.subject_ref,
    b.encounter_ref
FROM base AS b;
