"""Triggers keep the day rollups exact on every write of care notes, in the writing transaction.

Whatever writes a note — the API, the admin, seed_notes' bulk INSERT ... SELECT, raw SQL —
fires a statement-level trigger with a transition table, so a bulk insert is aggregated
once per statement rather than once per row:

- INSERT / UPDATE / DELETE on carenotes_carenote: the notes that appeared count +1, those
  that went away -1 (an UPDATE is both; an edit that moves nothing cancels out). The signed
  changes are summed per rollup key and applied with one ordered upsert per table
  (``ON CONFLICT DO UPDATE SET notes = notes + change``: atomic under concurrent writers,
  and in key order so two writers lock shared keys in the same order). Rows a change empties
  are deleted at once. A count that would go below zero means the rollup had drifted (a
  trigger bypassed by hand): the row is dropped with a WARNING in the server log rather
  than refusing the care note; ``manage.py stats_rollups --check`` reports it.
- TRUNCATE of carenotes_carenote empties the rollups (seed_notes --reset, test flushes).
- A tenant's time-zone change re-buckets that tenant: its rollups are rebuilt from its notes
  under the new zone (stats_rollups_rebuild), in the same transaction.

The local day is ``(created_at AT TIME ZONE tenant.timezone)::date``: the instant's calendar
date in the zone, the rule carenotes.core.days.local_date applies in Python (the property
tests hold the two equal across DST changes).

Locking. Writers take a shared transaction-level advisory lock per tenant they touch before
reading its time zone; a rebuild (time-zone change, ``stats_rollups --rebuild``) takes the
same lock exclusively, so it waits for in-flight writers of the tenant to commit, and
writers that come later wait for it and then read the new zone. Each statement of a PL/pgSQL
function takes a fresh snapshot under READ COMMITTED (the application's isolation level), so
what follows the lock sees everything committed before it was granted.

The migration backfills existing notes while holding SHARE locks on notes and tenants, so no
write can slip between the backfill and the triggers.
"""

from django.db import migrations

COUNTS_TABLE = "stats_day_counts"
RESIDENTS_TABLE = "stats_day_residents"
NOTES_TABLE = "carenotes_carenote"
TENANTS_TABLE = "tenants_tenant"

FUNCTIONS = f"""
CREATE FUNCTION stats_rollups_lock_key(tenant bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtextextended('carenotes.stats_rollups:' || tenant::text, 0) $$;

CREATE FUNCTION stats_rollups_rebuild(tenant bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Waits for the tenant's in-flight writers; later ones wait for this transaction.
    PERFORM pg_advisory_xact_lock(stats_rollups_lock_key(tenant));
    DELETE FROM {COUNTS_TABLE} WHERE tenant_id = tenant;
    DELETE FROM {RESIDENTS_TABLE} WHERE tenant_id = tenant;
    WITH notes AS (
        SELECT n.tenant_id, (n.created_at AT TIME ZONE t.timezone)::date AS day,
               n.facility_id, n.patient_id, n.category, n.priority
        FROM {NOTES_TABLE} AS n JOIN {TENANTS_TABLE} AS t ON t.id = n.tenant_id
        WHERE n.tenant_id = tenant
    ), counted AS (
        INSERT INTO {COUNTS_TABLE} (tenant_id, day, facility_id, category, priority, notes)
        SELECT tenant_id, day, facility_id, category, priority, count(*)
        FROM notes GROUP BY 1, 2, 3, 4, 5
    )
    INSERT INTO {RESIDENTS_TABLE} (tenant_id, day, facility_id, patient_id, notes)
    SELECT tenant_id, day, facility_id, patient_id, count(*)
    FROM notes GROUP BY 1, 2, 3, 4;
END
$$;
"""


def _apply(source: str, tenants: str) -> str:
    """Return the PL/pgSQL statements applying the signed note changes of ``source``."""
    return f"""
    PERFORM pg_advisory_xact_lock_shared(stats_rollups_lock_key(tenant_id))
    FROM (SELECT DISTINCT tenant_id FROM {tenants} ORDER BY tenant_id) AS touched;
    WITH changes AS (
        SELECT n.tenant_id, (n.created_at AT TIME ZONE t.timezone)::date AS day,
               n.facility_id, n.patient_id, n.category, n.priority, n.change
        FROM ({source}) AS n JOIN {TENANTS_TABLE} AS t ON t.id = n.tenant_id
    ), counted AS (
        INSERT INTO {COUNTS_TABLE} AS r (tenant_id, day, facility_id, category, priority, notes)
        SELECT tenant_id, day, facility_id, category, priority, sum(change)
        FROM changes GROUP BY 1, 2, 3, 4, 5 HAVING sum(change) <> 0 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant_id, day, facility_id, category, priority)
        DO UPDATE SET notes = r.notes + EXCLUDED.notes
    )
    INSERT INTO {RESIDENTS_TABLE} AS r (tenant_id, day, facility_id, patient_id, notes)
    SELECT tenant_id, day, facility_id, patient_id, sum(change)
    FROM changes GROUP BY 1, 2, 3, 4 HAVING sum(change) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, day, facility_id, patient_id)
    DO UPDATE SET notes = r.notes + EXCLUDED.notes;
"""


# Rows this transaction emptied (only its own can be visible at zero: every writer deletes
# them before it commits), found through the partial *_emptied_idx indexes.
DELETE_EMPTIED = f"""
    WITH counts AS (DELETE FROM {COUNTS_TABLE} WHERE notes <= 0 RETURNING notes),
         residents AS (DELETE FROM {RESIDENTS_TABLE} WHERE notes <= 0 RETURNING notes)
    SELECT (SELECT count(*) FROM counts WHERE notes < 0)
           + (SELECT count(*) FROM residents WHERE notes < 0)
    INTO below_zero;
    IF below_zero > 0 THEN
        RAISE WARNING 'stats rollups had drifted: % rows went below zero and were dropped; '
            'run manage.py stats_rollups --check', below_zero;
    END IF;
"""

NOTE_COLUMNS = "tenant_id, created_at, facility_id, patient_id, category, priority"
INSERTED = f"SELECT {NOTE_COLUMNS}, 1 AS change FROM new_notes"
DELETED = f"SELECT {NOTE_COLUMNS}, -1 AS change FROM old_notes"
BOTH = "(SELECT tenant_id FROM old_notes UNION ALL SELECT tenant_id FROM new_notes)"


def _trigger_function(name: str, body: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    below_zero bigint;
BEGIN
{body}
    RETURN NULL;
END
$$;
"""


TRIGGER_FUNCTIONS = (
    _trigger_function("stats_rollups_notes_inserted", _apply(INSERTED, "new_notes"))
    + _trigger_function(
        "stats_rollups_notes_deleted", _apply(DELETED, "old_notes") + DELETE_EMPTIED
    )
    + _trigger_function(
        "stats_rollups_notes_updated",
        _apply(f"{DELETED} UNION ALL {INSERTED}", f"{BOTH} AS both_sides") + DELETE_EMPTIED,
    )
    + _trigger_function(
        "stats_rollups_notes_truncated", f"    TRUNCATE {COUNTS_TABLE}, {RESIDENTS_TABLE};"
    )
    + _trigger_function(
        "stats_rollups_tenant_rezoned", "    PERFORM stats_rollups_rebuild(NEW.id);"
    )
)

TRIGGERS = f"""
CREATE TRIGGER stats_rollups_insert AFTER INSERT ON {NOTES_TABLE}
    REFERENCING NEW TABLE AS new_notes
    FOR EACH STATEMENT EXECUTE FUNCTION stats_rollups_notes_inserted();
CREATE TRIGGER stats_rollups_update AFTER UPDATE ON {NOTES_TABLE}
    REFERENCING OLD TABLE AS old_notes NEW TABLE AS new_notes
    FOR EACH STATEMENT EXECUTE FUNCTION stats_rollups_notes_updated();
CREATE TRIGGER stats_rollups_delete AFTER DELETE ON {NOTES_TABLE}
    REFERENCING OLD TABLE AS old_notes
    FOR EACH STATEMENT EXECUTE FUNCTION stats_rollups_notes_deleted();
CREATE TRIGGER stats_rollups_truncate AFTER TRUNCATE ON {NOTES_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION stats_rollups_notes_truncated();
CREATE TRIGGER stats_rollups_rezone AFTER UPDATE OF timezone ON {TENANTS_TABLE}
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION stats_rollups_tenant_rezoned();
"""

DROP_TRIGGERS = f"""
DROP TRIGGER stats_rollups_rezone ON {TENANTS_TABLE};
DROP TRIGGER stats_rollups_truncate ON {NOTES_TABLE};
DROP TRIGGER stats_rollups_delete ON {NOTES_TABLE};
DROP TRIGGER stats_rollups_update ON {NOTES_TABLE};
DROP TRIGGER stats_rollups_insert ON {NOTES_TABLE};
DROP FUNCTION stats_rollups_tenant_rezoned();
DROP FUNCTION stats_rollups_notes_truncated();
DROP FUNCTION stats_rollups_notes_updated();
DROP FUNCTION stats_rollups_notes_deleted();
DROP FUNCTION stats_rollups_notes_inserted();
"""

DROP_FUNCTIONS = """
DROP FUNCTION stats_rollups_rebuild(bigint);
DROP FUNCTION stats_rollups_lock_key(bigint);
"""

# No write may land between the backfill and the triggers: hold writers off until commit.
BACKFILL = f"""
LOCK TABLE {TENANTS_TABLE}, {NOTES_TABLE} IN SHARE MODE;
SELECT stats_rollups_rebuild(id) FROM {TENANTS_TABLE} ORDER BY id;
ANALYZE {COUNTS_TABLE};
ANALYZE {RESIDENTS_TABLE};
"""
UNDO_BACKFILL = f"TRUNCATE {COUNTS_TABLE}, {RESIDENTS_TABLE};"


class Migration(migrations.Migration):
    dependencies = [("stats", "0002_day_rollup_row_level_security")]

    operations = [
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
        migrations.RunSQL(TRIGGER_FUNCTIONS + TRIGGERS + BACKFILL, UNDO_BACKFILL + DROP_TRIGGERS),
    ]
