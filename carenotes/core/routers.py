"""Database routing: reads that may use a replica go to a fresh one, everything else to the
primary (carenotes.core.replicas decides which and why)."""

from carenotes.core.replicas import PRIMARY, read_alias


class ReplicaRouter:
    """``DATABASE_ROUTERS`` entry when ``DATABASE_REPLICA_URLS`` names replicas.

    Reads: ``read_alias()`` at each query, so a replica answers only an allowed read
    (a listed view, no open transaction) for which it has replayed the reader's tenants'
    last writes. Writes, and so reads inside a transaction, and migrations: the primary.
    """

    def db_for_read(self, model, **hints) -> str:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        # Every alias holds the same rows: an object read from a replica relates to the
        # primary's (and is saved there).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY
