-- Patients, with race and ethnicity from the US Core extensions. Patients without a birth
-- date or a gender are left out (and so are their encounters, which join this table).

-- One row per patient, extension and system: the ombCategory values, or else the detailed
-- ones, lower-cased, sorted and joined with '; '. Race and ethnicity are read in one walk
-- of the extensions, into a working table each of the two tables below selects from.
CREATE TABLE core__patient_tmp_ext AS
WITH ext AS (SELECT id, unnest(extension) AS e FROM patient),
sub AS (
    SELECT id, e['url'] AS url, unnest(e['extension']) AS s FROM ext
    WHERE e['url'] IN (
        'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
        'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity'
    )
),
vals AS (
    SELECT id, url, s['url'] AS system, s['valueCoding']['code'] AS code,
        lower(s['valueCoding']['display']) AS display,
        CASE s['url'] WHEN 'ombCategory' THEN 0 ELSE 1 END AS rank
    FROM sub
    WHERE s['url'] IN ('ombCategory', 'detailed')
        AND s['valueCoding']['display'] IS NOT NULL AND s['valueCoding']['display'] <> ''
),
best AS (SELECT id, url, min(rank) AS rank FROM vals GROUP BY id, url)
SELECT v.id, v.url, v.system,
    array_to_string(array_sort(array_agg(v.code)), '; ') AS code,
    array_to_string(array_sort(array_agg(v.display)), '; ') AS display
FROM vals AS v INNER JOIN best AS b ON b.id = v.id AND b.url = v.url AND b.rank = v.rank
GROUP BY v.id, v.url, v.system;

CREATE TABLE core__patient_ext_race AS
SELECT id, system, code AS race_code, display AS race_display
FROM core__patient_tmp_ext
WHERE url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';

CREATE TABLE core__patient_ext_ethnicity AS
SELECT id, system, code AS ethnicity_code, display AS ethnicity_display
FROM core__patient_tmp_ext
WHERE url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity';

CREATE TABLE core__patient AS
WITH postal AS (
    SELECT id, max(a['postalCode']) AS code
    FROM (SELECT id, unnest(address) AS a FROM patient)
    GROUP BY id
)
SELECT
    p.id,
    p.gender,
    fhir_date(p."birthDate") AS "birthDate",
    coalesce(substr(postal.code, 1, 3), 'cumulus__none') AS "postalCode_3",
    concat('Patient/', p.id) AS subject_ref,
    coalesce(r.race_display, 'unknown') AS race_display,
    coalesce(e.ethnicity_display, 'unknown') AS ethnicity_display
FROM patient AS p
LEFT JOIN postal ON postal.id = p.id
LEFT JOIN core__patient_ext_race AS r ON r.id = p.id
LEFT JOIN core__patient_ext_ethnicity AS e ON e.id = p.id
WHERE p."birthDate" IS NOT NULL AND p.gender IS NOT NULL;
