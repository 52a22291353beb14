-- Diagnostic reports: category, code and conclusion codings; the effective time or period
-- and when it was issued; whether a presented form holds text.

-- One pass over each report's own codings and references (stratus-library src/lists.rs):
-- the rows cumulus-library's joins to the code tables and SELECT DISTINCT give.
CREATE TABLE core__diagnosticreport AS
WITH base AS (
    SELECT d.id, d.status,
        fhir_timestamp(d."effectiveDateTime") AS effective, fhir_date(d."effectiveDateTime") AS effective_day,
        fhir_timestamp(d."effectivePeriod"['start']) AS period_start,
        fhir_timestamp(d."effectivePeriod"['end']) AS period_end,
        fhir_date(d."effectivePeriod"['start']) AS start_day,
        fhir_date(d."effectivePeriod"['end']) AS end_day,
        fhir_timestamp(d.issued) AS issued, fhir_date(d.issued) AS issued_day,
        d.subject['reference'] AS subject_ref, d.encounter['reference'] AS encounter_ref,
        has_text(d."presentedForm", '') AS aux_has_text,
        combinations(codings(d.category, 'code,system,display'),
            codings(d.code, 'code,system,display'),
            codings(d."conclusionCode", 'code,system,display'),
            list_texts(d.performer, 'reference'), list_texts(d.specimen, 'reference'),
            list_texts(d.result, 'reference')) AS picks
    FROM diagnosticreport AS d
    WHERE d.status IS NULL OR d.status <> 'entered-in-error'
),
flat AS (
    SELECT id, status, effective, effective_day, period_start, period_end, start_day, end_day,
        issued, issued_day, subject_ref, encounter_ref, aux_has_text, unnest(picks) AS x
    FROM base
)
SELECT
    b.id,
    b.status,
    b.x['c1']['code'] AS category_code, b.x['c1']['system'] AS category_system,
    b.x['c1']['display'] AS category_display,
    b.x['c2']['code'] AS code_code, b.x['c2']['system'] AS code_system,
    b.x['c2']['display'] AS code_display,
    b.effective AS "effectiveDateTime",
    b.effective_day AS "effectiveDateTime_day",
    CAST(date_trunc('week', b.effective_day) AS DATE) AS "effectiveDateTime_week",
    CAST(date_trunc('month', b.effective_day) AS DATE) AS "effectiveDateTime_month",
    CAST(date_trunc('year', b.effective_day) AS DATE) AS "effectiveDateTime_year",
    b.period_start AS "effectivePeriod_start",
    b.start_day AS "effectivePeriod_start_day",
    CAST(date_trunc('week', b.start_day) AS DATE) AS "effectivePeriod_start_week",
    CAST(date_trunc('month', b.start_day) AS DATE) AS "effectivePeriod_start_month",
    CAST(date_trunc('year', b.start_day) AS DATE) AS "effectivePeriod_start_year",
    b.period_end AS "effectivePeriod_end",
    b.end_day AS "effectivePeriod_end_day",
    CAST(date_trunc('week', b.end_day) AS DATE) AS "effectivePeriod_end_week",
    CAST(date_trunc('month', b.end_day) AS DATE) AS "effectivePeriod_end_month",
    CAST(date_trunc('year', b.end_day) AS DATE) AS "effectivePeriod_end_year",
    b.issued,
    b.issued_day AS "issued_day",
    CAST(date_trunc('week', b.issued_day) AS DATE) AS "issued_week",
    CAST(date_trunc('month', b.issued_day) AS DATE) AS "issued_month",
    CAST(date_trunc('year', b.issued_day) AS DATE) AS "issued_year",
    b.x['c3']['code'] AS "conclusionCode_code", b.x['c3']['system'] AS "conclusionCode_system",
    b.x['c3']['display'] AS "conclusionCode_display",
    b.aux_has_text,
    concat('DiagnosticReport/', b.id) AS diagnosticreport_ref,
    b.subject_ref,
    b.encounter_ref,
    b.x['c4'] AS performer_ref,
    b.x['c5'] AS specimen_ref,
    b.x['c6'] AS result_ref
FROM flat AS b;
