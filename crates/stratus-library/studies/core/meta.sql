-- The span of the encounters the study covers (not capped at today).
CREATE TABLE core__meta_date AS
SELECT min(e.period_start_day) AS min_date, max(e.period_end_day) AS max_date
FROM (
    SELECT DISTINCT e.period_start_day, e.period_end_day
    FROM core__encounter AS e
    INNER JOIN core__patient AS p ON p.subject_ref = e.subject_ref
) AS e;
