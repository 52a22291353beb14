-- Diagnostic reports: category, code and conclusion codings; the effective time or period
-- and when it was issued; whether a presented form holds text.

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
        d.performer, d.specimen, d.result, d."presentedForm" AS forms
    FROM diagnosticreport AS d
    WHERE d.status IS NULL OR d.status <> 'entered-in-error'
),
forms AS (SELECT id, unnest(forms) AS a FROM base),
marks AS (SELECT id, unnest(a['_data']['extension']) AS x FROM forms
    WHERE a['contentType'] IN ('text/plain', 'text/html', 'application/xhtml+xml')),
texts AS (
    SELECT id, bool_or(has) AS has_text
    FROM (
        SELECT id, a['data'] IS NOT NULL
            AND a['contentType'] IN ('text/plain', 'text/html', 'application/xhtml+xml') AS has
        FROM forms
        UNION ALL
        SELECT id, x['valueCode'] = 'masked'
            AND x['url'] = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason' AS has
        FROM marks
    )
    GROUP BY id
),
performers AS (SELECT id, unnest(performer) AS r FROM base),
specimens AS (SELECT id, unnest(specimen) AS r FROM base),
results AS (SELECT id, unnest(result) AS r FROM base)
SELECT DISTINCT
    b.id,
    b.status,
    cat.code AS category_code, cat.system AS category_system, cat.display AS category_display,
    cc.code AS code_code, cc.system AS code_system, cc.display AS code_display,
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
    cl.code AS "conclusionCode_code", cl.system AS "conclusionCode_system",
    cl.display AS "conclusionCode_display",
    coalesce(texts.has_text, false) AS aux_has_text,
    concat('DiagnosticReport/', b.id) AS diagnosticreport_ref,
    b.subject_ref,
    b.encounter_ref,
    performers.r['reference'] AS performer_ref,
    specimens.r['reference'] AS specimen_ref,
    results.r['reference'] AS result_ref
FROM base AS b
LEFT JOIN core__diagnosticreport_dn_category AS cat ON cat.id = b.id
LEFT JOIN core__diagnosticreport_dn_code AS cc ON cc.id = b.id
LEFT JOIN core__diagnosticreport_dn_conclusioncode AS cl ON cl.id = b.id
LEFT JOIN texts ON texts.id = b.id
LEFT JOIN performers ON performers.id = b.id
LEFT JOIN specimens ON specimens.id = b.id
LEFT JOIN results ON results.id = b.id;
