-- Medication requests. The medication's codings come from the inline
-- medicationCodeableConcept, a contained Medication (`#id`), or the medication table
-- (`Medication/<id>`); every coding makes a row.

CREATE TABLE core__medicationrequest_dn_category AS
WITH cc AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS cc
    FROM (
        SELECT id, category AS arr,
            unnest(range(1, coalesce(CAST(array_length(category) AS BIGINT), 0) + 1)) AS r
        FROM medicationrequest
    )
),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__medicationrequest_dn_status_reason AS
WITH cc AS (SELECT id, 0 AS "row", "statusReason" AS cc FROM medicationrequest),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__medicationrequest_dn_course_of_therapy AS
WITH cc AS (SELECT id, 0 AS "row", "courseOfTherapyType" AS cc FROM medicationrequest),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__medicationrequest_dn_inline_code AS
WITH cc AS (SELECT id, 0 AS "row", "medicationCodeableConcept" AS cc FROM medicationrequest),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__medication_dn_code AS
WITH cc AS (SELECT id, 0 AS "row", code AS cc FROM medication),
codings AS (SELECT id, "row", unnest(cc['coding']) AS c FROM cc)
SELECT id, "row", c['code'] AS code, c['system'] AS system, c['display'] AS display,
    c['userSelected'] AS "userSelected"
FROM codings;

CREATE TABLE core__medicationrequest_dn_contained_code AS
WITH contained AS (SELECT id, unnest(contained) AS m FROM medicationrequest),
codings AS (
    SELECT id, m['id'] AS contained_id, unnest(m['code']['coding']) AS c
    FROM contained WHERE m['resourceType'] = 'Medication'
)
SELECT r.id, CAST(0 AS BIGINT) AS "row", c.c['code'] AS code, c.c['system'] AS system,
    c.c['display'] AS display, c.c['userSelected'] AS "userSelected"
FROM medicationrequest AS r
INNER JOIN codings AS c
    ON c.id = r.id AND concat('#', c.contained_id) = r."medicationReference"['reference'];

CREATE TABLE core__medicationrequest AS
WITH base AS (
    SELECT r.id, r.status, r.intent, r."statusReason"['text'] AS status_reason_text,
        r."courseOfTherapyType"['text'] AS course_of_therapy_text, r."reportedBoolean",
        r."reportedReference"['reference'] AS reported_ref,
        r."medicationReference"['reference'] AS medication_ref, r."dispenseRequest" AS dr,
        fhir_timestamp(r."authoredOn") AS authored, fhir_date(r."authoredOn") AS authored_day,
        r.subject['reference'] AS subject_ref, r.encounter['reference'] AS encounter_ref,
        r.requester['reference'] AS requester_ref,
        r."priorPrescription"['reference'] AS prior_prescription_ref
    FROM medicationrequest AS r
    WHERE r.status IS NULL OR r.status <> 'entered-in-error'
),
medications AS (
    SELECT id, code, system, display FROM core__medicationrequest_dn_inline_code
    UNION ALL
    SELECT id, code, system, display FROM core__medicationrequest_dn_contained_code
    UNION ALL
    SELECT b.id, m.code, m.system, m.display
    FROM base AS b
    INNER JOIN core__medication_dn_code AS m ON concat('Medication/', m.id) = b.medication_ref
)
SELECT DISTINCT
    b.id,
    b.status,
    b.intent,
    cat.code AS category_code, cat.system AS category_system, cat.display AS category_display,
    sr.code AS status_reason_code, sr.system AS status_reason_system,
    sr.display AS status_reason_display, b.status_reason_text,
    ct.code AS course_of_therapy_code, ct.system AS course_of_therapy_system,
    ct.display AS course_of_therapy_display, b.course_of_therapy_text,
    b."reportedBoolean",
    b.reported_ref,
    m.code AS medication_code, m.system AS medication_system, m.display AS medication_display,
    CAST(b.dr['numberOfRepeatsAllowed'] AS BIGINT) AS dispense_refills_allowed,
    CAST(b.dr['quantity']['value'] AS DOUBLE) AS dispense_quantity_value,
    b.dr['quantity']['unit'] AS dispense_quantity_unit,
    b.dr['quantity']['system'] AS dispense_quantity_system,
    b.dr['quantity']['code'] AS dispense_quantity_code,
    CAST(b.dr['expectedSupplyDuration']['value'] AS DOUBLE) AS expected_supply_duration_value,
    b.dr['expectedSupplyDuration']['unit'] AS expected_supply_duration_unit,
    fhir_timestamp(b.dr['validityPeriod']['start']) AS validity_period_start,
    fhir_timestamp(b.dr['validityPeriod']['end']) AS validity_period_end,
    b.authored AS "authoredOn",
    CAST(date_trunc('month', b.authored_day) AS DATE) AS "authoredOn_month",
    concat('MedicationRequest/', b.id) AS medicationrequest_ref,
    b.subject_ref,
    b.encounter_ref,
    b.requester_ref,
    b.prior_prescription_ref
FROM base AS b
LEFT JOIN core__medicationrequest_dn_category AS cat ON cat.id = b.id
LEFT JOIN core__medicationrequest_dn_status_reason AS sr ON sr.id = b.id
LEFT JOIN core__medicationrequest_dn_course_of_therapy AS ct ON ct.id = b.id
LEFT JOIN medications AS m ON m.id = b.id;
