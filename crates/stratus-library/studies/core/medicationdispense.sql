-- Medication dispenses, as medication requests: the medication's codings from the inline
-- medicationCodeableConcept, a contained Medication (`#id`) or the medication table
-- (`Medication/<id>`); one row per coding, authorizing prescription and performer. R4 names
-- the encounter `context`. A date written to the year or month reads as its first day.

CREATE TABLE core__medicationdispense AS
WITH base AS (
    SELECT DISTINCT d.id, d.status, d.context['reference'] AS encounter_ref,
        d.subject['reference'] AS subject_ref,
        d."medicationReference"['reference'] AS medication_ref,
        CAST(d.quantity['value'] AS DOUBLE) AS quantity_value,
        d.quantity['unit'] AS quantity_unit, d.quantity['system'] AS quantity_system,
        d.quantity['code'] AS quantity_code,
        CAST(d."daysSupply"['value'] AS DOUBLE) AS days_supply_value,
        d."daysSupply"['unit'] AS days_supply_unit,
        d."daysSupply"['system'] AS days_supply_system,
        d."daysSupply"['code'] AS days_supply_code,
        fhir_timestamp(d."whenPrepared") AS prepared, fhir_date(d."whenPrepared") AS prepared_day,
        fhir_timestamp(d."whenHandedOver") AS handed,
        fhir_date(d."whenHandedOver") AS handed_day
    FROM medicationdispense AS d
    WHERE d.status IS NULL OR d.status <> 'entered-in-error'
),
prescriptions AS (
    SELECT id, unnest("authorizingPrescription")['reference'] AS reference
    FROM medicationdispense
),
performers AS (
    SELECT id, performer_ref FROM (
        SELECT id, unnest(performer)['actor']['reference'] AS performer_ref
        FROM medicationdispense
    )
    WHERE performer_ref IS NOT NULL
),
medications AS (
    SELECT id, code, system, display FROM core__medicationdispense_dn_inline_code
    UNION
    SELECT b.id, c.code, c.system, c.display
    FROM base AS b
    INNER JOIN core__medicationdispense_dn_contained_code AS c
        ON c.id = b.id AND concat('#', c.contained_id) = b.medication_ref
    WHERE c.resource_type = 'Medication'
    UNION
    SELECT b.id, m.code, m.system, m.display
    FROM base AS b
    INNER JOIN core__medication_dn_code AS m ON concat('Medication/', m.id) = b.medication_ref
)
SELECT
    b.id,
    b.status,
    cat.code AS category_code, cat.system AS category_system, cat.display AS category_display,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    m.code AS medication_code, m.system AS medication_system, m.display AS medication_display,
    b.quantity_value,
    b.quantity_unit,
    b.quantity_system,
    b.quantity_code,
    b.days_supply_value,
    b.days_supply_unit,
    b.days_supply_system,
    b.days_supply_code,
    b.prepared AS "whenPrepared",
    CAST(date_trunc('month', b.prepared_day) AS DATE) AS "whenPrepared_month",
    b.handed AS "whenHandedOver",
    b.handed_day AS "whenHandedOver_day",
    CAST(date_trunc('week', b.handed_day) AS DATE) AS "whenHandedOver_week",
    CAST(date_trunc('month', b.handed_day) AS DATE) AS "whenHandedOver_month",
    CAST(date_trunc('year', b.handed_day) AS DATE) AS "whenHandedOver_year",
    concat('MedicationDispense/', b.id) AS medicationdispense_ref,
    b.subject_ref,
    b.encounter_ref,
    p.reference AS medicationrequest_ref,
    pf.performer_ref
FROM base AS b
LEFT JOIN prescriptions AS p ON p.id = b.id
LEFT JOIN performers AS pf ON pf.id = b.id
LEFT JOIN medications AS m ON m.id = b.id
LEFT JOIN core__medicationdispense_dn_category AS cat ON cat.id = b.id
LEFT JOIN core__medicationdispense_dn_type AS t ON t.id = b.id;

-- One row per dosage instruction and dose-and-rate entry (`row`, `dose_row`), with the
-- dispense's times and references.
CREATE TABLE core__medicationdispense_dosageinstruction AS
WITH parent AS (
    SELECT DISTINCT id, medicationdispense_ref, subject_ref, encounter_ref, whenhandedover,
        whenhandedover_month
    FROM core__medicationdispense
),
dosage AS (
    SELECT id, CAST(r AS BIGINT) AS "row", arr[r] AS d
    FROM (
        SELECT id, "dosageInstruction" AS arr,
            unnest(range(1, coalesce(CAST(array_length("dosageInstruction") AS BIGINT), 0) + 1))
                AS r
        FROM medicationdispense
    )
),
dose AS (
    SELECT id, "row", CAST(r AS BIGINT) AS dose_row, arr[r] AS q
    FROM (
        SELECT id, "row", d['doseAndRate'] AS arr,
            unnest(range(1, coalesce(CAST(array_length(d['doseAndRate']) AS BIGINT), 0) + 1))
                AS r
        FROM dosage
    )
)
SELECT
    ds.id,
    ds."row",
    q.dose_row,
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
        WHEN q.q['doseQuantity']['value'] IS NOT NULL OR q.q['doseQuantity']['unit'] IS NOT NULL
            OR q.q['doseQuantity']['system'] IS NOT NULL
            OR q.q['doseQuantity']['code'] IS NOT NULL THEN 'quantity'
        WHEN q.q['doseRange']['low'] IS NOT NULL OR q.q['doseRange']['high'] IS NOT NULL
            THEN 'range'
    END AS dosage_dose_type,
    CAST(q.q['doseQuantity']['value'] AS DOUBLE) AS dosage_dose_value,
    CAST(q.q['doseRange']['low']['value'] AS DOUBLE) AS dosage_dose_low_value,
    CAST(q.q['doseRange']['high']['value'] AS DOUBLE) AS dosage_dose_high_value,
    coalesce(q.q['doseQuantity']['unit'], q.q['doseRange']['low']['unit'],
        q.q['doseRange']['high']['unit']) AS dosage_dose_unit,
    coalesce(q.q['doseQuantity']['system'], q.q['doseRange']['low']['system'],
        q.q['doseRange']['high']['system']) AS dosage_dose_system,
    coalesce(q.q['doseQuantity']['code'], q.q['doseRange']['low']['code'],
        q.q['doseRange']['high']['code']) AS dosage_dose_code,
    q.q['type']['text'] AS dosage_dose_rate_type_text,
    p.whenhandedover AS "whenHandedOver",
    p.whenhandedover_month AS "whenHandedOver_month",
    p.medicationdispense_ref,
    p.subject_ref,
    p.encounter_ref
FROM dosage AS ds
INNER JOIN parent AS p ON p.id = ds.id
LEFT JOIN dose AS q ON q.id = ds.id AND q."row" = ds."row";
