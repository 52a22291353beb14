-- Which code systems and codes each coded field of the raw tables holds: one row per
-- distinct (table, field, code, display, system), and a row of empty strings for a field
-- with no codes at all, so a reader can tell "checked, empty" from "not checked".
CREATE TABLE discovery__code_sources AS
WITH codes_0 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'class' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT "class"['code'] AS code, "class"['display'] AS display, "class"['system'] AS system FROM encounter WHERE "class" IS NOT NULL)
),
codes_1 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'type' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest("type") AS cc FROM encounter)))
),
codes_2 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'servicetype' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("serviceType"['coding']) AS c FROM encounter))
),
codes_3 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'priority' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(priority['coding']) AS c FROM encounter))
),
codes_4 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'reasoncode' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest("reasonCode") AS cc FROM encounter)))
),
codes_5 AS (
    SELECT DISTINCT 'encounter' AS table_name, 'hospitalization.dischargedisposition' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(hospitalization['dischargeDisposition']['coding']) AS c FROM encounter))
),
codes_6 AS (
    SELECT DISTINCT 'condition' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(category) AS cc FROM condition)))
),
codes_7 AS (
    SELECT DISTINCT 'condition' AS table_name, 'code' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(code['coding']) AS c FROM condition))
),
codes_8 AS (
    SELECT DISTINCT 'documentreference' AS table_name, 'type' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("type"['coding']) AS c FROM documentreference))
),
codes_9 AS (
    SELECT DISTINCT 'documentreference' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(category) AS cc FROM documentreference)))
),
codes_10 AS (
    SELECT DISTINCT 'observation' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(category) AS cc FROM observation)))
),
codes_11 AS (
    SELECT DISTINCT 'observation' AS table_name, 'code' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(code['coding']) AS c FROM observation))
),
codes_12 AS (
    SELECT DISTINCT 'observation' AS table_name, 'interpretation' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(interpretation) AS cc FROM observation)))
),
codes_13 AS (
    SELECT DISTINCT 'observation' AS table_name, 'valuecodeableconcept' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("valueCodeableConcept"['coding']) AS c FROM observation))
),
codes_14 AS (
    SELECT DISTINCT 'observation' AS table_name, 'dataabsentreason' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("dataAbsentReason"['coding']) AS c FROM observation))
),
codes_15 AS (
    SELECT DISTINCT 'medicationrequest' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(category) AS cc FROM medicationrequest)))
),
codes_16 AS (
    SELECT DISTINCT 'medicationrequest' AS table_name, 'medicationcodeableconcept' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("medicationCodeableConcept"['coding']) AS c FROM medicationrequest))
),
codes_17 AS (
    SELECT DISTINCT 'procedure' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(category['coding']) AS c FROM procedure))
),
codes_18 AS (
    SELECT DISTINCT 'procedure' AS table_name, 'code' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(code['coding']) AS c FROM procedure))
),
codes_19 AS (
    SELECT DISTINCT 'diagnosticreport' AS table_name, 'category' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(cc['coding']) AS c FROM (SELECT unnest(category) AS cc FROM diagnosticreport)))
),
codes_20 AS (
    SELECT DISTINCT 'diagnosticreport' AS table_name, 'code' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(code['coding']) AS c FROM diagnosticreport))
),
codes_21 AS (
    SELECT DISTINCT 'allergyintolerance' AS table_name, 'code' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest(code['coding']) AS c FROM allergyintolerance))
),
codes_22 AS (
    SELECT DISTINCT 'immunization' AS table_name, 'vaccinecode' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("vaccineCode"['coding']) AS c FROM immunization))
),
codes_23 AS (
    SELECT DISTINCT 'patient' AS table_name, 'maritalstatus' AS column_name,
        coalesce(code, '') AS code, coalesce(display, '') AS display, coalesce(system, '') AS system
    FROM (SELECT c['code'] AS code, c['display'] AS display, c['system'] AS system
        FROM (SELECT unnest("maritalStatus"['coding']) AS c FROM patient))
)
SELECT * FROM codes_0
UNION ALL
SELECT 'encounter', 'class', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_0)
UNION ALL
SELECT * FROM codes_1
UNION ALL
SELECT 'encounter', 'type', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_1)
UNION ALL
SELECT * FROM codes_2
UNION ALL
SELECT 'encounter', 'servicetype', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_2)
UNION ALL
SELECT * FROM codes_3
UNION ALL
SELECT 'encounter', 'priority', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_3)
UNION ALL
SELECT * FROM codes_4
UNION ALL
SELECT 'encounter', 'reasoncode', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_4)
UNION ALL
SELECT * FROM codes_5
UNION ALL
SELECT 'encounter', 'hospitalization.dischargedisposition', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_5)
UNION ALL
SELECT * FROM codes_6
UNION ALL
SELECT 'condition', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_6)
UNION ALL
SELECT * FROM codes_7
UNION ALL
SELECT 'condition', 'code', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_7)
UNION ALL
SELECT * FROM codes_8
UNION ALL
SELECT 'documentreference', 'type', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_8)
UNION ALL
SELECT * FROM codes_9
UNION ALL
SELECT 'documentreference', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_9)
UNION ALL
SELECT * FROM codes_10
UNION ALL
SELECT 'observation', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_10)
UNION ALL
SELECT * FROM codes_11
UNION ALL
SELECT 'observation', 'code', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_11)
UNION ALL
SELECT * FROM codes_12
UNION ALL
SELECT 'observation', 'interpretation', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_12)
UNION ALL
SELECT * FROM codes_13
UNION ALL
SELECT 'observation', 'valuecodeableconcept', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_13)
UNION ALL
SELECT * FROM codes_14
UNION ALL
SELECT 'observation', 'dataabsentreason', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_14)
UNION ALL
SELECT * FROM codes_15
UNION ALL
SELECT 'medicationrequest', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_15)
UNION ALL
SELECT * FROM codes_16
UNION ALL
SELECT 'medicationrequest', 'medicationcodeableconcept', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_16)
UNION ALL
SELECT * FROM codes_17
UNION ALL
SELECT 'procedure', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_17)
UNION ALL
SELECT * FROM codes_18
UNION ALL
SELECT 'procedure', 'code', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_18)
UNION ALL
SELECT * FROM codes_19
UNION ALL
SELECT 'diagnosticreport', 'category', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_19)
UNION ALL
SELECT * FROM codes_20
UNION ALL
SELECT 'diagnosticreport', 'code', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_20)
UNION ALL
SELECT * FROM codes_21
UNION ALL
SELECT 'allergyintolerance', 'code', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_21)
UNION ALL
SELECT * FROM codes_22
UNION ALL
SELECT 'immunization', 'vaccinecode', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_22)
UNION ALL
SELECT * FROM codes_23
UNION ALL
SELECT 'patient', 'maritalstatus', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM codes_23);
