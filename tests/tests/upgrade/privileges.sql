-- What role $1 may do with the outbox extension's objects, one privilege a
-- line: EXECUTE on member functions, table and sequence privileges on member
-- relations, USAGE and CREATE on the extension's schema. Effective
-- privileges (has_*_privilege), so grants to PUBLIC and through role
-- membership count, as they do for the role's sessions.
WITH ext AS (
    SELECT oid, extnamespace FROM pg_catalog.pg_extension WHERE extname = 'outbox'
),
member AS (
    SELECT d.classid, d.objid
    FROM pg_catalog.pg_depend AS d
    JOIN ext ON d.refobjid = ext.oid
    WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
),
who AS (SELECT $1::text::name AS r),
privilege(p) AS (
SELECT 'EXECUTE ' || p.oid::pg_catalog.regprocedure::text
FROM pg_catalog.pg_proc AS p, who
WHERE p.oid IN (SELECT objid FROM member WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass)
  AND pg_catalog.has_function_privilege(who.r, p.oid, 'EXECUTE')
UNION ALL
SELECT priv || ' ' || c.oid::pg_catalog.regclass::text
FROM pg_catalog.pg_class AS c, who,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
WHERE c.oid IN (SELECT objid FROM member WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass)
  AND c.relkind <> 'S'
  AND pg_catalog.has_table_privilege(who.r, c.oid, priv)
UNION ALL
SELECT priv || ' ' || c.oid::pg_catalog.regclass::text
FROM pg_catalog.pg_class AS c, who, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS priv
WHERE c.oid IN (SELECT objid FROM member WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass)
  AND c.relkind = 'S'
  AND pg_catalog.has_sequence_privilege(who.r, c.oid, priv)
UNION ALL
SELECT priv || ' schema ' || ext.extnamespace::pg_catalog.regnamespace::text
FROM ext, who, unnest(ARRAY['USAGE', 'CREATE']) AS priv
WHERE pg_catalog.has_schema_privilege(who.r, ext.extnamespace, priv)
)
SELECT p FROM privilege ORDER BY p COLLATE "C"
