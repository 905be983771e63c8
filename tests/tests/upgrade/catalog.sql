-- The outbox extension's objects as text, one fact per line, so that an
-- upgraded install can be compared with a fresh one line by line.
--
-- Why the shape:
-- * The starting point is pg_depend's deptype 'e' rows: exactly the objects
--   `ALTER EXTENSION ... UPDATE` and `CREATE EXTENSION` made members. Indexes,
--   constraints and triggers are not members themselves; they are listed
--   under their member table.
-- * Nothing that differs between two identical installs is printed: no OIDs,
--   no sequence values, no row counts, no dropped columns. Columns are
--   numbered among the live ones, so a column an upgrade dropped and re-added
--   shows as a moved column (SELECT * and INSERT without a column list see
--   the order), not as a hole.
-- * ACLs are compared as effective privileges: a NULL ACL is expanded with
--   acldefault(), so "never granted" and "granted exactly the default" print
--   the same, and a function an upgrade script created without REVOKE shows
--   PUBLIC's EXECUTE. pg_init_privs (what pg_dump treats as the extension's
--   own grants) is expanded the same way.
-- * A function's whole pg_get_functiondef (arguments, defaults, volatility,
--   SECURITY DEFINER, SET search_path, the C symbol or the body) is printed
--   one numbered line per source line, so a diff points at the line.
-- * Sorted in the C collation by the caller's ORDER BY, every line starts
--   with its object, so the facts of one object stay together.
WITH ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace,
           e.extconfig, e.extcondition
    FROM pg_catalog.pg_extension AS e
    WHERE e.extname = 'outbox'
),
member AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM pg_catalog.pg_depend AS d
    JOIN ext ON d.refobjid = ext.oid
    WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
      AND d.deptype = 'e'
),
rel AS (
    SELECT c.oid::pg_catalog.regclass::text AS name, c.*
    FROM pg_catalog.pg_class AS c
    JOIN member AS m ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objid = c.oid
),
func AS (
    SELECT p.oid::pg_catalog.regprocedure::text AS name, p.*
    FROM pg_catalog.pg_proc AS p
    JOIN member AS m ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND m.objid = p.oid
),
typ AS (
    SELECT pg_catalog.format_type(t.oid, NULL) AS name, t.*
    FROM pg_catalog.pg_type AS t
    JOIN member AS m ON m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND m.objid = t.oid
),
nsp AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl
    FROM pg_catalog.pg_namespace AS n
    WHERE n.oid IN (SELECT extnamespace FROM ext)
       OR n.oid IN (SELECT objid FROM member
                    WHERE classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass)
),
-- Effective ACL entries of every object that has one: (object, kind, entry).
acl AS (
    SELECT 'relation ' || r.name AS obj, 'acl' AS what,
           pg_catalog.aclexplode(coalesce(r.relacl, pg_catalog.acldefault(
               CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", r.relowner))) AS a
    FROM rel AS r
    UNION ALL
    SELECT 'function ' || f.name, 'acl',
           pg_catalog.aclexplode(coalesce(f.proacl, pg_catalog.acldefault('f', f.proowner)))
    FROM func AS f
    UNION ALL
    SELECT 'type ' || t.name, 'acl',
           pg_catalog.aclexplode(coalesce(t.typacl, pg_catalog.acldefault('T', t.typowner)))
    FROM typ AS t
    UNION ALL
    SELECT 'schema ' || n.nspname, 'acl',
           pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner)))
    FROM nsp AS n
    UNION ALL
    -- What pg_dump takes as the extension's initial privileges; no row means
    -- the default, as pg_dump reads it.
    SELECT 'relation ' || r.name, 'init-privs',
           pg_catalog.aclexplode(coalesce(ip.initprivs, pg_catalog.acldefault(
               CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", r.relowner)))
    FROM rel AS r
    LEFT JOIN pg_catalog.pg_init_privs AS ip
      ON ip.objoid = r.oid AND ip.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
     AND ip.objsubid = 0
    UNION ALL
    SELECT 'function ' || f.name, 'init-privs',
           pg_catalog.aclexplode(coalesce(ip.initprivs, pg_catalog.acldefault('f', f.proowner)))
    FROM func AS f
    LEFT JOIN pg_catalog.pg_init_privs AS ip
      ON ip.objoid = f.oid AND ip.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
     AND ip.objsubid = 0
    UNION ALL
    SELECT 'schema ' || n.nspname, 'init-privs',
           pg_catalog.aclexplode(coalesce(ip.initprivs, pg_catalog.acldefault('n', n.nspowner)))
    FROM nsp AS n
    LEFT JOIN pg_catalog.pg_init_privs AS ip
      ON ip.objoid = n.oid AND ip.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
     AND ip.objsubid = 0
),
role_name(oid, name) AS (
    SELECT 0::pg_catalog.oid, 'PUBLIC'
    UNION ALL
    SELECT oid, rolname FROM pg_catalog.pg_roles
),
line(line) AS (
    -- The extension itself.
    SELECT pg_catalog.format('extension %s: version %s, schema %s, relocatable %s',
                             ext.extname, ext.extversion,
                             ext.extnamespace::pg_catalog.regnamespace, ext.extrelocatable)
    FROM ext
    UNION ALL
    -- pg_extension_config_dump registrations: pg_dump dumps these tables' rows.
    -- An entry whose relation was dropped (an upgrade dropped a member
    -- without ALTER EXTENSION ... DROP first) prints without its oid, so two
    -- such installs still compare equal to each other, and not to a fresh one.
    SELECT pg_catalog.format('extension config-dump: %s where %L',
                             coalesce(r.oid::pg_catalog.regclass::text,
                                      'a relation that no longer exists'),
                             c.cond)
    FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(cfg, cond)
    LEFT JOIN pg_catalog.pg_class AS r ON r.oid = c.cfg
    UNION ALL
    SELECT 'member: ' || pg_catalog.pg_describe_object(m.classid, m.objid, m.objsubid)
    FROM member AS m
    UNION ALL
    -- Objects in the extension's schema that are not members: an upgrade
    -- script's leftovers (a fresh install has none).
    SELECT pg_catalog.format('not a member, in schema %s: %s', n.nspname,
                             pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0))
    FROM pg_catalog.pg_class AS c
    JOIN nsp AS n ON n.oid = c.relnamespace
    WHERE c.relkind NOT IN ('i', 'I')
      AND c.oid NOT IN (SELECT oid FROM rel)
    UNION ALL
    SELECT pg_catalog.format('not a member, in schema %s: %s', n.nspname,
                             pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, 0))
    FROM pg_catalog.pg_proc AS p
    JOIN nsp AS n ON n.oid = p.pronamespace
    WHERE p.oid NOT IN (SELECT oid FROM func)
    UNION ALL
    -- Schemas.
    SELECT pg_catalog.format('schema %s: owner %s, comment %L', n.nspname,
                             n.nspowner::pg_catalog.regrole,
                             pg_catalog.obj_description(n.oid, 'pg_namespace'))
    FROM nsp AS n
    UNION ALL
    SELECT pg_catalog.format('schema %s: default acl for %s in %s: %s', n.nspname,
                             d.defaclrole::pg_catalog.regrole, d.defaclobjtype, d.defaclacl)
    FROM pg_catalog.pg_default_acl AS d
    JOIN nsp AS n ON n.oid = d.defaclnamespace
    UNION ALL
    -- Every ACL entry, grantee and grantor by name.
    SELECT pg_catalog.format('%s: %s %s to %s by %s%s', acl.obj, acl.what,
                             (acl.a).privilege_type, g.name, gr.name,
                             CASE WHEN (acl.a).is_grantable THEN ' with grant option' ELSE '' END)
    FROM acl
    JOIN role_name AS g ON g.oid = (acl.a).grantee
    JOIN role_name AS gr ON gr.oid = (acl.a).grantor
    UNION ALL
    -- Relations.
    SELECT pg_catalog.format(
        'relation %s: kind %s, persistence %s, owner %s, options %s, row security %s/%s, '
        'replica identity %s, partition key %s, partition of %s%s, comment %L',
        r.name, r.relkind, r.relpersistence, r.relowner::pg_catalog.regrole,
        (SELECT coalesce(pg_catalog.string_agg(o, ',' ORDER BY o COLLATE "C"), '-')
         FROM unnest(r.reloptions) AS o),
        r.relrowsecurity, r.relforcerowsecurity, r.relreplident,
        coalesce(CASE WHEN r.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(r.oid) END, '-'),
        coalesce((SELECT pg_catalog.string_agg(i.inhparent::pg_catalog.regclass::text, ',')
                  FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = r.oid), '-'),
        coalesce(' ' || pg_catalog.pg_get_expr(r.relpartbound, r.oid), ''),
        pg_catalog.obj_description(r.oid, 'pg_class'))
    FROM rel AS r
    UNION ALL
    SELECT pg_catalog.format('relation %s: column %s %s %s%s%s%s%s%s, acl %s, comment %L',
        r.name,
        pg_catalog.lpad(
            (pg_catalog.row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum))::text, 3, '0'),
        pg_catalog.quote_ident(a.attname),
        pg_catalog.format_type(a.atttypid, a.atttypmod),
        CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
        CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
        CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END,
        CASE WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END,
        CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
             THEN ' collate ' || a.attcollation::pg_catalog.regcollation::text ELSE '' END,
        coalesce(a.attacl::text, '-'),
        pg_catalog.col_description(r.oid, a.attnum))
    FROM rel AS r
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
    WHERE r.relkind <> 'S'
    UNION ALL
    SELECT pg_catalog.format('relation %s: constraint %s %s, comment %L', r.name,
                             pg_catalog.quote_ident(con.conname),
                             pg_catalog.pg_get_constraintdef(con.oid),
                             pg_catalog.obj_description(con.oid, 'pg_constraint'))
    FROM rel AS r
    JOIN pg_catalog.pg_constraint AS con ON con.conrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('relation %s: index %s%s%s%s, comment %L', r.name,
                             pg_catalog.pg_get_indexdef(i.indexrelid),
                             CASE WHEN i.indisclustered THEN ' clustered' ELSE '' END,
                             CASE WHEN i.indisreplident THEN ' replica identity' ELSE '' END,
                             CASE WHEN NOT i.indisvalid THEN ' INVALID' ELSE '' END,
                             pg_catalog.obj_description(i.indexrelid, 'pg_class'))
    FROM rel AS r
    JOIN pg_catalog.pg_index AS i ON i.indrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('relation %s: trigger %s, enabled %s, comment %L', r.name,
                             pg_catalog.pg_get_triggerdef(tg.oid),
                             tg.tgenabled,
                             pg_catalog.obj_description(tg.oid, 'pg_trigger'))
    FROM rel AS r
    JOIN pg_catalog.pg_trigger AS tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
    UNION ALL
    SELECT pg_catalog.format('relation %s: policy %s for %s to %s, %s, using %s, check %s', r.name,
                             pg_catalog.quote_ident(pol.polname), pol.polcmd,
                             (SELECT pg_catalog.string_agg(g.name, ',' ORDER BY g.name COLLATE "C")
                              FROM role_name AS g WHERE g.oid = ANY (pol.polroles)),
                             CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                             pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
                             pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid))
    FROM rel AS r
    JOIN pg_catalog.pg_policy AS pol ON pol.polrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('relation %s: rule %s', r.name, pg_catalog.pg_get_ruledef(rw.oid))
    FROM rel AS r
    JOIN pg_catalog.pg_rewrite AS rw ON rw.ev_class = r.oid
    UNION ALL
    -- Sequences: their definition, not their value.
    SELECT pg_catalog.format('relation %s: sequence %s start %s increment %s min %s max %s cache %s%s',
                             r.name, s.seqtypid::pg_catalog.regtype, s.seqstart, s.seqincrement,
                             s.seqmin, s.seqmax, s.seqcache,
                             CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
    FROM rel AS r
    JOIN pg_catalog.pg_sequence AS s ON s.seqrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('relation %s: sequence owned by %s.%s (%s)', r.name,
                             d.refobjid::pg_catalog.regclass,
                             pg_catalog.quote_ident(a.attname), d.deptype)
    FROM rel AS r
    JOIN pg_catalog.pg_depend AS d
      ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = r.oid
     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0
     AND d.deptype IN ('a', 'i')
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE r.relkind = 'S'
    UNION ALL
    -- Functions: the whole definition, numbered line by line.
    SELECT pg_catalog.format('function %s: owner %s, comment %L', f.name,
                             f.proowner::pg_catalog.regrole,
                             pg_catalog.obj_description(f.oid, 'pg_proc'))
    FROM func AS f
    UNION ALL
    SELECT pg_catalog.format('function %s: def %s %s', f.name,
                             pg_catalog.lpad(src.n::text, 3, '0'), src.l)
    FROM func AS f,
         LATERAL unnest(pg_catalog.string_to_array(
             CASE WHEN f.prokind = 'a'
                  THEN 'aggregate (pg_get_functiondef does not print aggregates)'
                  ELSE pg_catalog.pg_get_functiondef(f.oid) END,
             E'\n')) WITH ORDINALITY AS src(l, n)
    UNION ALL
    -- Types that are members themselves (enums, domains, composites).
    SELECT pg_catalog.format('type %s: kind %s, owner %s, base %s, comment %L', t.name, t.typtype,
                             t.typowner::pg_catalog.regrole,
                             CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) ELSE '-' END,
                             pg_catalog.obj_description(t.oid, 'pg_type'))
    FROM typ AS t
    UNION ALL
    SELECT pg_catalog.format('type %s: label %s %s', t.name, e.enumsortorder, e.enumlabel)
    FROM typ AS t
    JOIN pg_catalog.pg_enum AS e ON e.enumtypid = t.oid
    UNION ALL
    SELECT pg_catalog.format('type %s: constraint %s %s', t.name, pg_catalog.quote_ident(con.conname),
                             pg_catalog.pg_get_constraintdef(con.oid))
    FROM typ AS t
    JOIN pg_catalog.pg_constraint AS con ON con.contypid = t.oid
    UNION ALL
    SELECT pg_catalog.format('type %s: attribute %s %s %s', t.name,
                             pg_catalog.lpad(a.attnum::text, 3, '0'),
                             pg_catalog.quote_ident(a.attname),
                             pg_catalog.format_type(a.atttypid, a.atttypmod))
    FROM typ AS t
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE t.typtype = 'c'
)
SELECT line FROM line ORDER BY line COLLATE "C"
