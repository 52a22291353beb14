-- Clinical notes' metadata (never their text): type and category codings, the author
-- date parts from context.period.start, and aux_has_text when an attachment holds text (or
-- the ETL's marker that it did).

-- The attachments' format, a Coding (not a CodeableConcept): one row per distinct value.
CREATE TABLE core__documentreference_dn_format AS
WITH formats AS (SELECT id, unnest(content)['format'] AS f FROM documentreference)
SELECT DISTINCT id, f['code'] AS code, f['system'] AS system, f['display'] AS display
FROM formats
WHERE f IS NOT NULL;

CREATE TABLE core__documentreference AS
WITH base AS (
    SELECT d.id, d.status, d."docStatus", fhir_timestamp(d."date") AS written,
        fhir_date(d.context['period']['start']) AS author_day,
        d.subject['reference'] AS subject_ref, d.context['encounter'] AS encounters,
        d.author, d.content
    FROM documentreference AS d
    WHERE d.status IS NULL OR d.status <> 'entered-in-error'
),
contents AS (SELECT id, unnest(content) AS c FROM base),
attachments AS (
    SELECT id, c['attachment'] AS a FROM contents
    WHERE c['attachment']['contentType'] IN ('text/plain', 'text/html', 'application/xhtml+xml')
),
marks AS (SELECT id, unnest(a['_data']['extension']) AS x FROM attachments),
texts AS (
    SELECT id, bool_or(has) AS has_text
    FROM (
        SELECT id, a['data'] IS NOT NULL AS has FROM attachments
        UNION ALL
        SELECT id, x['valueCode'] = 'masked'
            AND x['url'] = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason' AS has
        FROM marks
    )
    GROUP BY id
),
encounters AS (SELECT id, unnest(encounters) AS r FROM base),
authors AS (SELECT id, unnest(author) AS r FROM base)
SELECT DISTINCT
    b.id,
    b.status,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    cat.code AS category_code,
    b."docStatus",
    b.written AS "date",
    b.author_day,
    CAST(date_trunc('week', b.author_day) AS DATE) AS "author_week",
    CAST(date_trunc('month', b.author_day) AS DATE) AS "author_month",
    CAST(date_trunc('year', b.author_day) AS DATE) AS "author_year",
    contents.c['format']['code'] AS format_code,
    coalesce(texts.has_text, false) AS aux_has_text,
    b.subject_ref,
    encounters.r['reference'] AS encounter_ref,
    authors.r['reference'] AS author_ref,
    concat('DocumentReference/', b.id) AS documentreference_ref
FROM base AS b
LEFT JOIN core__documentreference_dn_type AS t ON t.id = b.id
LEFT JOIN core__documentreference_dn_category AS cat ON cat.id = b.id
LEFT JOIN contents ON contents.id = b.id
LEFT JOIN texts ON texts.id = b.id
LEFT JOIN encounters ON encounters.id = b.id
LEFT JOIN authors ON authors.id = b.id;
