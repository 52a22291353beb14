-- Medication requests. The medication's codings come from the inline
-- medicationCodeableConcept, a contained Medication (`#id`), or the medication table
-- (`Medication/<id>`); every coding makes a row. The request's own codings are read in the
-- pass over it (stratus-library src/lists.rs), not joined back from the code tables.

CREATE TABLE core__medicationrequest AS
WITH base AS (
    SELECT r.id, r.status, r.intent, r."statusReason"['text'] AS status_reason_text,
        r."courseOfTherapyType"['text'] AS course_of_therapy_text, r."reportedBoolean",
        r."reportedReference"['reference'] AS reported_ref,
        r."medicationReference"['reference'] AS medication_ref,
        CAST(r."dispenseRequest"['numberOfRepeatsAllowed'] AS BIGINT) AS dispense_refills_allowed,
        CAST(r."dispenseRequest"['quantity']['value'] AS DOUBLE) AS dispense_quantity_value,
        r."dispenseRequest"['quantity']['unit'] AS dispense_quantity_unit,
        r."dispenseRequest"['quantity']['system'] AS dispense_quantity_system,
        r."dispenseRequest"['quantity']['code'] AS dispense_quantity_code,
        CAST(r."dispenseRequest"['expectedSupplyDuration']['value'] AS DOUBLE)
            AS expected_supply_duration_value,
        r."dispenseRequest"['expectedSupplyDuration']['unit'] AS expected_supply_duration_unit,
        fhir_date(r."dispenseRequest"['validityPeriod']['start']) AS validity_period_start,
        fhir_date(r."dispenseRequest"['validityPeriod']['end']) AS validity_period_end,
        fhir_timestamp(r."authoredOn") AS authored, fhir_date(r."authoredOn") AS authored_day,
        r.subject['reference'] AS subject_ref, r.encounter['reference'] AS encounter_ref,
        r.requester['reference'] AS requester_ref,
        r."priorPrescription"['reference'] AS prior_prescription_ref,
        combinations(codings(r.category, 'code,system,display'),
            codings(r."statusReason", 'code,system,display'),
            codings(r."courseOfTherapyType", 'code,system,display')) AS picks
    FROM medicationrequest AS r
    WHERE r.status IS NULL OR r.status <> 'entered-in-error'
),
-- The three are exclusive (medication[x] is a concept or a reference, `#` or not); UNION,
-- not UNION ALL, keeps them distinct as the SELECT DISTINCT over all did.
medications AS (
    SELECT id, code, system, display FROM core__medicationrequest_dn_inline_code
    UNION
    SELECT b.id, c.code, c.system, c.display
    FROM base AS b
    INNER JOIN core__medicationrequest_dn_contained_code AS c
        ON c.id = b.id AND concat('#', c.contained_id) = b.medication_ref
    WHERE c.resource_type = 'Medication'
    UNION
    SELECT b.id, m.code, m.system, m.display
    FROM base AS b
    INNER JOIN core__medication_dn_code AS m ON concat('Medication/', m.id) = b.medication_ref
),
flat AS (
    SELECT id, status, intent, status_reason_text, course_of_therapy_text, "reportedBoolean",
        reported_ref, dispense_refills_allowed, dispense_quantity_value, dispense_quantity_unit,
        dispense_quantity_system, dispense_quantity_code, expected_supply_duration_value,
        expected_supply_duration_unit, validity_period_start, validity_period_end, authored,
        authored_day, subject_ref, encounter_ref, requester_ref, prior_prescription_ref,
        unnest(picks) AS x
    FROM base
)
SELECT
    b.id,
    b.status,
    b.intent,
    b.x['c1']['code'] AS category_code, b.x['c1']['system'] AS category_system,
    b.x['c1']['display'] AS category_display,
    b.x['c2']['code'] AS status_reason_code, b.x['c2']['system'] AS status_reason_system,
    b.x['c2']['display'] AS status_reason_display, b.status_reason_text,
    b.x['c3']['code'] AS course_of_therapy_code, b.x['c3']['system'] AS course_of_therapy_system,
    b.x['c3']['display'] AS course_of_therapy_display, b.course_of_therapy_text,
    b."reportedBoolean",
    b.reported_ref,
    m.code AS medication_code, m.system AS medication_system, m.display AS medication_display,
    b.dispense_refills_allowed,
    b.dispense_quantity_value,
    b.dispense_quantity_unit,
    b.dispense_quantity_system,
    b.dispense_quantity_code,
    b.expected_supply_duration_value,
    b.expected_supply_duration_unit,
    b.validity_period_start,
    b.validity_period_end,
    b.authored AS "authoredOn",
    CAST(date_trunc('month', b.authored_day) AS DATE) AS "authoredOn_month",
    concat('MedicationRequest/', b.id) AS medicationrequest_ref,
    b.subject_ref,
    b.encounter_ref,
    b.requester_ref,
    b.prior_prescription_ref
FROM flat AS b
LEFT JOIN medications AS m ON m.id = b.id;

-- One row per dosage instruction and dose-and-rate entry (`row`, `dose_row`), with the
-- request's times and references.
CREATE TABLE core__medicationrequest_dosageinstruction AS
WITH dosage AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS d, authored, authored_day, subject_ref,
        encounter_ref
    FROM (
        SELECT id, "dosageInstruction" AS arr, fhir_timestamp("authoredOn") AS authored,
            fhir_date("authoredOn") AS authored_day, subject['reference'] AS subject_ref,
            encounter['reference'] AS encounter_ref,
            unnest(range(1, coalesce(CAST(array_length("dosageInstruction") AS BIGINT), 0) + 1))
                AS r
        FROM medicationrequest
        WHERE status IS NULL OR status <> 'entered-in-error'
    )
),
-- Each dose-and-rate entry of a dosage, or one row of NULLs for a dosage with none: what a
-- LEFT JOIN to its entries gives, without the join.
ds AS (
    SELECT id, "row", d, authored, authored_day, subject_ref, encounter_ref,
        CASE WHEN n > 0 THEN CAST(r AS BIGINT) END AS dose_row, d['doseAndRate'][r] AS q
    FROM (
        SELECT *, unnest(range(1, greatest(n, 1) + 1)) AS r
        FROM (
            SELECT *, coalesce(CAST(array_length(d['doseAndRate']) AS BIGINT), 0) AS n
            FROM dosage
        )
    )
)
SELECT
    ds.id,
    ds."row",
    ds.dose_row,
    CAST(ds.d['sequence'] AS BIGINT) AS dosage_sequence,
    ds.d['text'] AS dosage_text,
    ds.d['patientInstruction'] AS dosage_patient_instruction,
    ds.d['asNeededBoolean'] AS dosage_as_needed_bool,
    ds.d['timing']['code']['text'] AS dosage_timing_text,
    CAST(ds.d['timing']['repeat']['count'] AS BIGINT) AS dosage_timing_count,
    CAST(ds.d['timing']['repeat']['countMax'] AS BIGINT) AS dosage_timing_count_max,
    CAST(ds.d['timing']['repeat']['duration'] AS DOUBLE) AS dosage_timing_duration,
    CAST(ds.d['timing']['repeat']['durationMax'] AS DOUBLE) AS dosage_timing_duration_max,
    ds.d['timing']['repeat']['durationUnit'] AS dosage_timing_duration_unit,
    CAST(ds.d['timing']['repeat']['frequency'] AS BIGINT) AS dosage_timing_frequency,
    CAST(ds.d['timing']['repeat']['frequencyMax'] AS BIGINT) AS dosage_timing_frequency_max,
    CAST(ds.d['timing']['repeat']['period'] AS DOUBLE) AS dosage_timing_period,
    CAST(ds.d['timing']['repeat']['periodMax'] AS DOUBLE) AS dosage_timing_period_max,
    ds.d['timing']['repeat']['periodUnit'] AS dosage_timing_period_unit,
    CAST(ds.d['timing']['repeat']['offset'] AS BIGINT) AS dosage_timing_offset,
    fhir_date(ds.d['timing']['repeat']['boundsPeriod']['start']) AS dosage_timing_bounds_start,
    fhir_date(ds.d['timing']['repeat']['boundsPeriod']['end']) AS dosage_timing_bounds_end,
    CASE
        WHEN ds.q['doseQuantity']['value'] IS NOT NULL OR ds.q['doseQuantity']['unit'] IS NOT NULL
            OR ds.q['doseQuantity']['system'] IS NOT NULL
            OR ds.q['doseQuantity']['code'] IS NOT NULL THEN 'quantity'
        WHEN ds.q['doseRange']['low'] IS NOT NULL OR ds.q['doseRange']['high'] IS NOT NULL
            THEN 'range'
    END AS dosage_dose_type,
    CAST(ds.q['doseQuantity']['value'] AS DOUBLE) AS dosage_dose_value,
    CAST(ds.q['doseRange']['low']['value'] AS DOUBLE) AS dosage_dose_low_value,
    CAST(ds.q['doseRange']['high']['value'] AS DOUBLE) AS dosage_dose_high_value,
    coalesce(ds.q['doseQuantity']['unit'], ds.q['doseRange']['low']['unit'],
        ds.q['doseRange']['high']['unit']) AS dosage_dose_unit,
    coalesce(ds.q['doseQuantity']['system'], ds.q['doseRange']['low']['system'],
        ds.q['doseRange']['high']['system']) AS dosage_dose_system,
    coalesce(ds.q['doseQuantity']['code'], ds.q['doseRange']['low']['code'],
        ds.q['doseRange']['high']['code']) AS dosage_dose_code,
    ds.q['type']['text'] AS dosage_dose_rate_type_text,
    ds.authored AS "authoredOn",
    CAST(date_trunc('month', ds.authored_day) AS DATE) AS "authoredOn_month",
    concat('MedicationRequest/', ds.id) AS medicationrequest_ref,
    ds.subject_ref,
    ds.encounter_ref
FROM ds;
