-- Who and where: organizations, practitioners, their roles, and locations. One row per
-- identifier and per type (or code, specialty, qualification) coding. `alias` joins the
-- name and its aliases with ', ', as cumulus-library does, for searching. These resources
-- have no entered-in-error status to filter.

CREATE TABLE core__organization AS
WITH identifiers AS (SELECT id, unnest(identifier) AS i FROM organization)
SELECT
    o.id,
    i.i['value'] AS identifier_value,
    i.i['system'] AS identifier_system,
    o.active,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    o.name,
    array_to_string(
        CASE WHEN o.name IS NULL THEN o.alias
            WHEN o.alias IS NULL THEN make_array(o.name)
            ELSE array_concat(make_array(o.name), o.alias) END,
        ', '
    ) AS alias,
    concat('Organization/', o.id) AS organization_ref,
    o."partOf"['reference'] AS part_of_ref
FROM organization AS o
LEFT JOIN core__organization_dn_type AS t ON t.id = o.id
LEFT JOIN identifiers AS i ON i.id = o.id;

CREATE TABLE core__practitioner AS
WITH identifiers AS (SELECT id, unnest(identifier) AS i FROM practitioner)
SELECT
    p.id,
    i.i['value'] AS identifier_value,
    i.i['system'] AS identifier_system,
    p.active,
    q.code AS qualification_code_code, q.system AS qualification_code_system,
    q.display AS qualification_code_display,
    concat('Practitioner/', p.id) AS practitioner_ref
FROM practitioner AS p
LEFT JOIN core__practitioner_dn_qualification_code AS q ON q.id = p.id
LEFT JOIN identifiers AS i ON i.id = p.id;

CREATE TABLE core__practitionerrole AS
WITH identifiers AS (SELECT id, unnest(identifier) AS i FROM practitionerrole),
locations AS (SELECT id, unnest(location) AS l FROM practitionerrole)
SELECT
    r.id,
    i.i['value'] AS identifier_value,
    i.i['system'] AS identifier_system,
    r.active,
    c.code AS code_code, c.system AS code_system, c.display AS code_display,
    s.code AS specialty_code, s.system AS specialty_system, s.display AS specialty_display,
    concat('PractitionerRole/', r.id) AS practitionerrole_ref,
    r.practitioner['reference'] AS practitioner_ref,
    r.organization['reference'] AS organization_ref,
    l.l['reference'] AS location_ref
FROM practitionerrole AS r
LEFT JOIN core__practitionerrole_dn_code AS c ON c.id = r.id
LEFT JOIN core__practitionerrole_dn_specialty AS s ON s.id = r.id
LEFT JOIN identifiers AS i ON i.id = r.id
LEFT JOIN locations AS l ON l.id = r.id;

CREATE TABLE core__location AS
WITH identifiers AS (SELECT id, unnest(identifier) AS i FROM location)
SELECT
    l.id,
    i.i['value'] AS identifier_value,
    i.i['system'] AS identifier_system,
    l.status,
    l.name,
    array_to_string(
        CASE WHEN l.name IS NULL THEN l.alias
            WHEN l.alias IS NULL THEN make_array(l.name)
            ELSE array_concat(make_array(l.name), l.alias) END,
        ', '
    ) AS alias,
    t.code AS type_code, t.system AS type_system, t.display AS type_display,
    concat('Location/', l.id) AS location_ref,
    l."managingOrganization"['reference'] AS managing_organization_ref,
    l."partOf"['reference'] AS part_of_ref
FROM location AS l
LEFT JOIN core__location_dn_type AS t ON t.id = l.id
LEFT JOIN identifiers AS i ON i.id = l.id;
