"""Keys that include the tenant, and care notes partitioned by month.

One design for plain PostgreSQL and Citus (ARCHITECTURE.md, "Scale out"): Citus shards every
tenant table on ``tenant_id`` and accepts only primary keys and unique constraints that
include it, so every tenant table's key leads with ``tenant_id`` here too; Django keeps
``id`` as each model's ``pk`` (the key still identifies a row by ``id`` within its tenant).

``carenotes_carenote`` becomes a table range-partitioned on ``created_at``, one partition per
calendar month (UTC), named ``carenotes_carenote_pYYYY_MM``, plus a default partition that
takes a note of a month that has no partition yet (``manage.py notes_partitions`` moves such
notes into their month's partition when it creates it). PostgreSQL requires the partition
column in every unique constraint of a partitioned table: the primary key is
``(tenant_id, id, created_at)``. An amendment therefore cannot reference its note with a
foreign key (it would have to carry the note's ``created_at``): the trigger of migration
0006 already refuses an amendment whose note is not its tenant's, and a new trigger refuses
to delete a note that still has amendments (Django's ORM deletes the amendments first).

The table is rebuilt: the existing one is renamed, a partitioned one created with the same
columns, identity, indexes, constraints, triggers, row-level security policies, grants and
statistics (read from the catalog, so that nothing earlier migrations set up is lost), the
rows copied (inside the migration's transaction, holding an exclusive lock), and the old
table dropped. The copy fires no trigger: the day rollups already count these notes.

The application roles get no privilege on the partitions themselves: a partition has no
row-level security of its own, so every read and write goes through the parent's policies.

Not reversible: going back would need the old keys' uniqueness, which partitioning gives up.
"""

import datetime

from django.db import migrations, models

NOTES_TABLE = "carenotes_carenote"
OLD_TABLE = "carenotes_carenote_unpartitioned"
DEFAULT_PARTITION = "carenotes_carenote_default"
APP_ROLES = ("carenotes_app", "carenotes_system")
# Months created beyond the current one; manage.py notes_partitions keeps more as time passes.
MONTHS_AHEAD = 3
NOTES_PRIMARY_KEY = "(tenant_id, id, created_at)"
AMENDMENTS_TABLE = "carenotes_carenoteamendment"

# (table, primary key): every tenant table of this app, keyed on its tenant first.
TENANT_KEYS = [
    ("carenotes_patient", "(tenant_id, id)"),
    (AMENDMENTS_TABLE, "(tenant_id, id)"),
    ("carenotes_idempotencykey", "(tenant_id, id)"),
    ("carenotes_carenoteevent", "(tenant_id, pgh_id)"),
    ("carenotes_carenoteamendmentevent", "(tenant_id, pgh_id)"),
]

NOTE_WITH_AMENDMENTS = f"""
CREATE FUNCTION carenotes_note_amendments_restrict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM {AMENDMENTS_TABLE} WHERE tenant_id = OLD.tenant_id AND note_id = OLD.id
    ) THEN
        RAISE EXCEPTION 'care note % of tenant % still has amendments', OLD.id, OLD.tenant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER carenote_amendments_restrict AFTER DELETE ON {NOTES_TABLE}
    FOR EACH ROW EXECUTE FUNCTION carenotes_note_amendments_restrict();
"""


# The history tables' ids are written by triggers, which on Citus run on the workers: Citus
# gives each node its own range of a bigint sequence, and refuses nextval on a worker for an
# integer one (the model keeps pghistory's AutoField; Python reads either as int).
HISTORY_IDS = "".join(
    f"ALTER TABLE {table} ALTER COLUMN pgh_id TYPE bigint;\n"
    for table in ("carenotes_carenoteevent", "carenotes_carenoteamendmentevent")
)


# (index of a partition, the parent's index it belongs to, the partition) of a table.
PARTITION_INDEXES_SQL = """
SELECT child.relname, parent.relname, partition.relname
FROM pg_index parent_index
JOIN pg_class parent ON parent.oid = parent_index.indexrelid
JOIN pg_inherits i ON i.inhparent = parent.oid
JOIN pg_class child ON child.oid = i.inhrelid
JOIN pg_index child_index ON child_index.indexrelid = child.oid
JOIN pg_class partition ON partition.oid = child_index.indrelid
WHERE parent_index.indrelid = %s::regclass
"""


def _primary_key_sql(table: str, columns: str) -> str:
    return (
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
        f"ADD CONSTRAINT {table}_pkey PRIMARY KEY {columns};\n"
    )


def month_partition_name(month_start) -> str:
    """Return the name of the partition holding the notes of ``month_start``'s month."""
    return f"{NOTES_TABLE}_p{month_start:%Y_%m}"


def _rows(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchall()


def _catalog(cursor, table: str) -> dict:
    """Read what must be re-created on the rebuilt table, as DDL naming ``table``."""
    oid = f"'{table}'::regclass"
    return {
        "indexes": [
            definition
            for (definition,) in _rows(
                cursor,
                f"SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                f"WHERE i.indrelid = {oid} AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            )
        ],
        "constraints": _rows(
            cursor,
            f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE conrelid = {oid} AND contype IN ('c', 'f', 'u') ORDER BY conname",
        ),
        "triggers": [
            definition
            for (definition,) in _rows(
                cursor,
                f"SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                f"WHERE tgrelid = {oid} AND NOT tgisinternal ORDER BY tgname",
            )
        ],
        "policies": _rows(
            cursor,
            "SELECT policyname, permissive, cmd, "
            "array_to_string(ARRAY(SELECT quote_ident(r) FROM unnest(roles) r), ', '), "
            "qual, with_check FROM pg_policies WHERE tablename = %s",
            [table],
        ),
        "grants": _rows(
            cursor,
            f"SELECT a.privilege_type, r.rolname FROM pg_class c, aclexplode(c.relacl) a "
            f"JOIN pg_roles r ON r.oid = a.grantee WHERE c.oid = {oid} AND a.grantee <> c.relowner",
        ),
        "column_grants": _rows(
            cursor,
            f"SELECT x.privilege_type, quote_ident(a.attname), r.rolname FROM pg_attribute a, "
            f"aclexplode(a.attacl) x JOIN pg_roles r ON r.oid = x.grantee "
            f"WHERE a.attrelid = {oid} AND a.attacl IS NOT NULL ORDER BY 2, 3, 1",
        ),
        "statistics": [
            definition
            for (definition,) in _rows(
                cursor,
                f"SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext WHERE stxrelid = {oid}",
            )
        ],
        "rls": _rows(
            cursor, f"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = {oid}"
        )[0],
    }


def _policy_sql(table, name, permissive, command, roles, using, check) -> str:
    sql = f"CREATE POLICY {name} ON {table} AS {permissive} FOR {command} TO {roles}"
    if using is not None:
        sql += f" USING ({using})"
    if check is not None:
        sql += f" WITH CHECK ({check})"
    return sql


def _next_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def partition_months(first, last, today) -> list[datetime.date]:
    """Return the first days of the months that get a partition: those holding notes, the
    current one and MONTHS_AHEAD after it."""
    month = min(first or today, today).replace(day=1)
    stop = today.replace(day=1)
    for _ in range(MONTHS_AHEAD):
        stop = _next_month(stop)
    stop = max(stop, (last or today).replace(day=1))
    months = []
    while month <= stop:
        months.append(month)
        month = _next_month(month)
    return months


def partition_notes(apps, schema_editor):
    def execute(sql: str) -> None:
        schema_editor.execute(sql, params=None)

    with schema_editor.connection.cursor() as cursor:
        execute(f"LOCK TABLE {NOTES_TABLE} IN ACCESS EXCLUSIVE MODE")
        catalog = _catalog(cursor, NOTES_TABLE)
        (first, last, today), *_ = _rows(
            cursor,
            f"SELECT (min(created_at) AT TIME ZONE 'UTC')::date, "
            f"(max(created_at) AT TIME ZONE 'UTC')::date, "
            f"(now() AT TIME ZONE 'UTC')::date FROM {NOTES_TABLE}",
        )
        # Free every schema-wide name (indexes, statistics, the identity's sequence).
        execute(f"ALTER TABLE {NOTES_TABLE} RENAME TO {OLD_TABLE}")
        for (index,) in _rows(
            cursor,
            f"SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = '{OLD_TABLE}'::regclass",
        ):
            execute(f'ALTER INDEX "{index}" RENAME TO "{index[:50]}_unpartitioned"')
        for (statistics,) in _rows(
            cursor, f"SELECT stxname FROM pg_statistic_ext WHERE stxrelid = '{OLD_TABLE}'::regclass"
        ):
            execute(f"ALTER STATISTICS {statistics} RENAME TO {statistics[:50]}_unpartitioned")
        (sequence,) = _rows(cursor, f"SELECT pg_get_serial_sequence('{OLD_TABLE}', 'id')")[0]
        execute(f"ALTER SEQUENCE {sequence} RENAME TO carenotes_carenote_id_seq_unpartitioned")

        execute(
            f"CREATE TABLE {NOTES_TABLE} (LIKE {OLD_TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY "
            f"INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (created_at)"
        )
        execute(
            f"ALTER TABLE {NOTES_TABLE} ADD CONSTRAINT {NOTES_TABLE}_pkey "
            f"PRIMARY KEY {NOTES_PRIMARY_KEY}"
        )
        execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {NOTES_TABLE} DEFAULT")
        for month in partition_months(first, last, today):
            execute(
                f"CREATE TABLE {month_partition_name(month)} PARTITION OF {NOTES_TABLE} "
                f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
                f"TO ('{_next_month(month).isoformat()} 00:00:00+00')"
            )
        execute(f"INSERT INTO {NOTES_TABLE} SELECT * FROM {OLD_TABLE}")
        execute(
            f"SELECT setval(pg_get_serial_sequence('{NOTES_TABLE}', 'id'), "
            f"(SELECT last_value FROM carenotes_carenote_id_seq_unpartitioned), "
            f"(SELECT is_called FROM carenotes_carenote_id_seq_unpartitioned))"
        )

        # The catalog's definitions name the table as it was: now the partitioned one.
        for definition in catalog["indexes"]:
            execute(definition)
        for name, definition in catalog["constraints"]:
            execute(f"ALTER TABLE {NOTES_TABLE} ADD CONSTRAINT {name} {definition}")
        for definition in catalog["statistics"]:
            execute(definition)
        rls, force = catalog["rls"]
        if rls:
            execute(f"ALTER TABLE {NOTES_TABLE} ENABLE ROW LEVEL SECURITY")
        if force:
            execute(f"ALTER TABLE {NOTES_TABLE} FORCE ROW LEVEL SECURITY")
        for policy in catalog["policies"]:
            execute(_policy_sql(NOTES_TABLE, *policy))
        # Only the old table's privileges (not this owner's default privileges for new tables).
        execute(f"REVOKE ALL ON {NOTES_TABLE} FROM {', '.join(APP_ROLES)}")
        # A partition's indexes are named after the parent's (carenote_stats_covering_idx_p2026_12),
        # so that a query plan names the index it uses whichever partition it reads.
        for index, parent, partition in _rows(cursor, PARTITION_INDEXES_SQL, [NOTES_TABLE]):
            suffix = partition.removeprefix(f"{NOTES_TABLE}_")
            execute(f'ALTER INDEX "{index}" RENAME TO "{parent[: 62 - len(suffix)]}_{suffix}"')
        for privilege, role in catalog["grants"]:
            execute(f"GRANT {privilege} ON {NOTES_TABLE} TO {role}")
        for privilege, column, role in catalog["column_grants"]:
            execute(f"GRANT {privilege} ({column}) ON {NOTES_TABLE} TO {role}")
        execute(f"DROP TABLE {OLD_TABLE}")
        for definition in catalog["triggers"]:
            execute(definition)
        execute(NOTE_WITH_AMENDMENTS)
        partitions = [
            name
            for (name,) in _rows(
                cursor,
                f"SELECT inhrelid::regclass::text FROM pg_inherits "
                f"WHERE inhparent = '{NOTES_TABLE}'::regclass",
            )
        ]
        for partition in partitions:
            execute(f"REVOKE ALL ON {partition} FROM {', '.join(APP_ROLES)}")
        execute(f"ANALYZE {NOTES_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("carenotes", "0009_idempotency_keys_and_care_records")]

    operations = [
        # The amendment's note: checked by triggers, not a foreign key (see above).
        migrations.AlterField(
            model_name="carenoteamendment",
            name="note",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="amendments",
                to="carenotes.carenote",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="idempotencykey", name="idempotencykey_user_key_uniq"
        ),
        migrations.AddConstraint(
            model_name="idempotencykey",
            constraint=models.UniqueConstraint(
                fields=("tenant", "user", "key"), name="idempotencykey_tenant_user_key_uniq"
            ),
        ),
        migrations.RunSQL(
            HISTORY_IDS
            + "".join(_primary_key_sql(table, columns) for table, columns in TENANT_KEYS),
            migrations.RunSQL.noop,
        ),
        migrations.RunPython(partition_notes, migrations.RunPython.noop, atomic=True),
    ]
