-- Clinical notes' metadata (never their text): type and category codings, the author
-- date parts from context.period.start, and aux_has_text when an attachment holds text (or
-- the ETL's marker that it did).

-- The attachments' format, a Coding (not a CodeableConcept): one row per distinct value.
CREATE TABLE core__documentreference_dn_format AS
WITH formats AS (SELECT id, unnest(content)['format'] AS f FROM documentreference)
SELECT DISTINCT id, f['code'] AS code, f['system'] AS system, f['display'] AS display
FROM formats
WHERE f IS NOT NULL;

-- One pass over each note's own codings and lists (stratus-library src/lists.rs): the
-- rows cumulus-library's joins to the code tables and SELECT DISTINCT give.
CREATE TABLE core__documentreference AS
WITH base AS (
    SELECT d.id, d.status, d."docStatus", fhir_timestamp(d."date") AS written,
        fhir_date(d.context['period']['start']) AS author_day,
        d.subject['reference'] AS subject_ref,
        has_text(d.content, 'attachment') AS aux_has_text,
        combinations(codings(d.type, 'code,system,display'), codings(d.category, 'code'),
            list_texts(d.content, 'format.code'),
            list_texts(d.context['encounter'], 'reference'),
            list_texts(d.author, 'reference')) AS picks
    FROM documentreference AS d
    WHERE d.status IS NULL OR d.status <> 'entered-in-error'
),
flat AS (
    SELECT id, status, "docStatus", written, author_day, subject_ref, aux_has_text,
        unnest(picks) AS x
    FROM base
)
SELECT
    b.id,
    b.status,
    b.x['c1']['code'] AS type_code, b.x['c1']['system'] AS type_system,
    b.x['c1']['display'] AS type_display,
    b.x['c2']['code'] AS category_code,
    b."docStatus",
    b.written AS "date",
    b.author_day,
    CAST(date_trunc('week', b.author_day) AS DATE) AS "author_week",
    CAST(date_trunc('month', b.author_day) AS DATE) AS "author_month",
    CAST(date_trunc('year', b.author_day) AS DATE) AS "author_year",
    b.x['c3'] AS format_code,
    b.aux_has_text,
    b.subject_ref,
    b.x['c4'] AS encounter_ref,
    b.x['c5'] AS author_ref,
    concat('DocumentReference/', b.id) AS documentreference_ref
FROM flat AS b;
