"""The day rollups on Citus: triggers that a worker can run on its shards.

On plain PostgreSQL, statement-level triggers aggregate a statement's notes from its
transition table and apply them with one set-based upsert (stats 0003). On Citus each
shard of ``carenotes_carenote`` fires the triggers on its worker, and Citus cannot plan a
statement that reads a transition table together with a Citus table. The Citus versions
(installed by ``manage.py citus_distribute``) read the transition table alone, one tenant
at a time, and apply each rollup key with a single-row upsert that names the tenant: Citus
routes it to the colocated rollup shard on the same worker, the only kind of statement it
lets a trigger on a shard run. The tenant's time zone comes from ``tenants_tenant``, a
reference table every worker holds.

Two triggers of stats 0003 cannot run on a shard:

- the TRUNCATE trigger (emptying the rollups from a shard would reach other workers) runs
  only where the notes table is the coordinator's own (``TG_TABLE_NAME`` is a shard's name
  on a worker): a TRUNCATE of the notes reaches the coordinator's table too, and empties
  the rollups from there. It is dropped before the conversion, which truncates the local
  data of each converted table, and created again after it;
- the time-zone trigger on the ``tenants_tenant`` reference table (it would rebuild a
  tenant's rollups once per node) is dropped: the application rebuilds them when a
  tenant's time zone changes (stats.signals), from the coordinator.
"""

from django.dispatch import receiver

from tenants.citus import citus_distributed, citus_distributing

COUNTS_TABLE = "stats_day_counts"
RESIDENTS_TABLE = "stats_day_residents"
NOTES_TABLE = "carenotes_carenote"
TENANTS_TABLE = "tenants_tenant"
NOTE_COLUMNS = "tenant_id, created_at, facility_id, patient_id, category, priority"
INSERTED = f"SELECT {NOTE_COLUMNS}, 1 AS change FROM new_notes"
DELETED = f"SELECT {NOTE_COLUMNS}, -1 AS change FROM old_notes"
DROPPED_TRIGGERS = (
    f"DROP TRIGGER IF EXISTS stats_rollups_truncate ON {NOTES_TABLE}",
    f"DROP TRIGGER IF EXISTS stats_rollups_rezone ON {TENANTS_TABLE}",
)


def _body(source: str) -> str:
    """Return the PL/pgSQL applying the signed note changes of ``source``, tenant by tenant."""
    return f"""
DECLARE
    tenant bigint;
    zone text;
    r record;
    below_zero bigint := 0;
    emptied bigint;
BEGIN
    FOR tenant IN SELECT DISTINCT n.tenant_id FROM ({source}) AS n ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock_shared(stats_rollups_lock_key(tenant));
        SELECT t.timezone INTO zone FROM {TENANTS_TABLE} AS t WHERE t.id = tenant;
        FOR r IN
            SELECT (n.created_at AT TIME ZONE zone)::date AS day, n.facility_id, n.category,
                   n.priority, sum(n.change) AS change
            FROM ({source}) AS n WHERE n.tenant_id = tenant
            GROUP BY 1, 2, 3, 4 HAVING sum(n.change) <> 0 ORDER BY 1, 2, 3, 4
        LOOP
            INSERT INTO {COUNTS_TABLE} AS c
                (tenant_id, day, facility_id, category, priority, notes)
            VALUES (tenant, r.day, r.facility_id, r.category, r.priority, r.change)
            ON CONFLICT (tenant_id, day, facility_id, category, priority)
            DO UPDATE SET notes = c.notes + EXCLUDED.notes;
        END LOOP;
        FOR r IN
            SELECT (n.created_at AT TIME ZONE zone)::date AS day, n.facility_id, n.patient_id,
                   sum(n.change) AS change
            FROM ({source}) AS n WHERE n.tenant_id = tenant
            GROUP BY 1, 2, 3 HAVING sum(n.change) <> 0 ORDER BY 1, 2, 3
        LOOP
            INSERT INTO {RESIDENTS_TABLE} AS c (tenant_id, day, facility_id, patient_id, notes)
            VALUES (tenant, r.day, r.facility_id, r.patient_id, r.change)
            ON CONFLICT (tenant_id, day, facility_id, patient_id)
            DO UPDATE SET notes = c.notes + EXCLUDED.notes;
        END LOOP;
        SELECT count(*) INTO emptied FROM {COUNTS_TABLE}
        WHERE tenant_id = tenant AND notes < 0;
        below_zero := below_zero + emptied;
        SELECT count(*) INTO emptied FROM {RESIDENTS_TABLE}
        WHERE tenant_id = tenant AND notes < 0;
        below_zero := below_zero + emptied;
        DELETE FROM {COUNTS_TABLE} WHERE tenant_id = tenant AND notes <= 0;
        DELETE FROM {RESIDENTS_TABLE} WHERE tenant_id = tenant AND notes <= 0;
    END LOOP;
    IF below_zero > 0 THEN
        RAISE WARNING 'stats rollups had drifted: % rows went below zero and were dropped; '
            'run manage.py stats_rollups --check', below_zero;
    END IF;
    RETURN NULL;
END
"""


def _function(name: str, source: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f"{_body(source)}$$"
    )


CITUS_TRIGGER_FUNCTIONS = (
    _function("stats_rollups_notes_inserted", INSERTED),
    _function("stats_rollups_notes_deleted", DELETED),
    _function("stats_rollups_notes_updated", f"{DELETED} UNION ALL {INSERTED}"),
    f"""CREATE OR REPLACE FUNCTION stats_rollups_notes_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = '{NOTES_TABLE}' THEN  -- the coordinator's table, not a shard
        TRUNCATE {COUNTS_TABLE}, {RESIDENTS_TABLE};
    END IF;
    RETURN NULL;
END
$$""",
    f"DROP TRIGGER IF EXISTS stats_rollups_truncate ON {NOTES_TABLE}",
    f"""CREATE TRIGGER stats_rollups_truncate AFTER TRUNCATE ON {NOTES_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION stats_rollups_notes_truncated()""",
)


@receiver(citus_distributing)
def rollup_triggers_drop_for_citus(sender, cursor, **kwargs) -> None:
    """Drop the triggers no shard can run, before the conversion (it truncates local data:
    the TRUNCATE trigger would empty the rollups). Idempotent."""
    for statement in DROPPED_TRIGGERS:
        cursor.execute(statement)


@receiver(citus_distributed)
def rollup_triggers_for_citus(sender, cursor, **kwargs) -> None:
    """Replace the rollup triggers' functions with their Citus versions (idempotent)."""
    # One command per statement: Citus forwards each to the workers.
    for statement in CITUS_TRIGGER_FUNCTIONS:
        cursor.execute(statement)
