-- Observations: every coding of category, code, interpretation, value and data-absent
-- reason (a cross product, as in cumulus-library), and the laboratory and vital-signs
-- subsets.

-- cumulus-library joins the five code tables back on id and takes the distinct rows; the
-- same rows come from each observation's own codings (stratus-library src/lists.rs), in one
-- pass with no join to sort.
CREATE TABLE core__observation AS
WITH base AS (
    SELECT o.id, o.status, fhir_timestamp(o."effectiveDateTime") AS effective,
        fhir_date(o."effectiveDateTime") AS effective_day,
        CAST(o."valueQuantity"['value'] AS DOUBLE) AS q_value,
        o."valueQuantity"['comparator'] AS q_comparator, o."valueQuantity"['unit'] AS q_unit,
        o."valueQuantity"['system'] AS q_system, o."valueQuantity"['code'] AS q_code,
        o."valueString", o.subject['reference'] AS subject_ref,
        o.encounter['reference'] AS encounter_ref, o.specimen['reference'] AS specimen_ref,
        combinations(codings(o.category, 'code,system'), codings(o.code, 'code,system'),
            codings(o.interpretation, 'code,system,display'),
            codings(o."valueCodeableConcept", 'code,system,display'),
            codings(o."dataAbsentReason", 'code,system,display')) AS picks
    FROM observation AS o
    WHERE o.status IS NULL OR o.status <> 'entered-in-error'
),
flat AS (
    SELECT id, status, effective, effective_day, q_value, q_comparator, q_unit, q_system,
        q_code, "valueString", subject_ref, encounter_ref, specimen_ref, unnest(picks) AS x
    FROM base
)
SELECT
    b.id,
    b.x['c1']['code'] AS category_code, b.x['c1']['system'] AS category_system,
    b.status,
    b.x['c2']['code'] AS observation_code, b.x['c2']['system'] AS observation_system,
    b.x['c3']['code'] AS interpretation_code, b.x['c3']['system'] AS interpretation_system,
    b.x['c3']['display'] AS interpretation_display,
    b.effective AS "effectiveDateTime",
    b.effective_day AS "effectiveDateTime_day",
    CAST(date_trunc('week', b.effective_day) AS DATE) AS "effectiveDateTime_week",
    CAST(date_trunc('month', b.effective_day) AS DATE) AS "effectiveDateTime_month",
    CAST(date_trunc('year', b.effective_day) AS DATE) AS "effectiveDateTime_year",
    b.x['c4']['code'] AS "valueCodeableConcept_code",
    b.x['c4']['system'] AS "valueCodeableConcept_system",
    b.x['c4']['display'] AS "valueCodeableConcept_display",
    b.q_value AS "valueQuantity_value",
    b.q_comparator AS "valueQuantity_comparator",
    b.q_unit AS "valueQuantity_unit",
    b.q_system AS "valueQuantity_system",
    b.q_code AS "valueQuantity_code",
    b."valueString",
    b.x['c5']['code'] AS "dataAbsentReason_code", b.x['c5']['system'] AS "dataAbsentReason_system",
    b.x['c5']['display'] AS "dataAbsentReason_display",
    b.subject_ref,
    b.encounter_ref,
    b.specimen_ref,
    concat('Observation/', b.id) AS observation_ref
FROM flat AS b;

CREATE TABLE core__observation_lab AS
SELECT id, observation_code, observation_system, category_code, category_system,
    "valuecodeableconcept_code", "valuecodeableconcept_system", "valuecodeableconcept_display",
    "effectivedatetime_day", "effectivedatetime_week", "effectivedatetime_month",
    "effectivedatetime_year", status, subject_ref, encounter_ref, specimen_ref, observation_ref
FROM core__observation
WHERE category_code = 'laboratory'
    AND category_system = 'http://terminology.hl7.org/CodeSystem/observation-category';

CREATE TABLE core__observation_vital_signs AS
SELECT id, observation_code, observation_system, category_code, category_system,
    "valuecodeableconcept_code", "valuecodeableconcept_system", "valuecodeableconcept_display",
    "valuequantity_value", "valuequantity_comparator", "valuequantity_unit",
    "valuequantity_system", "valuequantity_code", status,
    interpretation_code, interpretation_system, interpretation_display,
    "effectivedatetime_day", "effectivedatetime_week", "effectivedatetime_month",
    "effectivedatetime_year", subject_ref, encounter_ref, observation_ref
FROM core__observation
WHERE category_code = 'vital-signs'
    AND category_system = 'http://terminology.hl7.org/CodeSystem/observation-category';

-- Each component's valueQuantity, by the component's position (`row`).
CREATE TABLE core__observation_component_valuequantity AS
WITH components AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS c
    FROM (
        SELECT id, component AS arr,
            unnest(range(1, CAST(array_length(component) AS BIGINT) + 1)) AS r
        FROM observation
        WHERE component IS NOT NULL
    )
)
SELECT id, "row", CAST(c['valueQuantity']['value'] AS DOUBLE) AS value,
    c['valueQuantity']['comparator'] AS comparator, c['valueQuantity']['unit'] AS unit,
    c['valueQuantity']['system'] AS system, c['valueQuantity']['code'] AS code
FROM components
WHERE c['valueQuantity'] IS NOT NULL;
