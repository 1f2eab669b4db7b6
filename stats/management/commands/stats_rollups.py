"""`manage.py stats_rollups`: compare the day rollups with the care notes, or repair them."""

from django.core.management.base import BaseCommand, CommandError

from stats.selectors import RollupDifferences, care_rollups_differences
from stats.services import care_rollups_rebuild
from tenants.models import Tenant
from tenants.rls import rls_system


def differences_report(differences: RollupDifferences) -> list[str]:
    """Return the lines describing ``differences``: one per table, then the total."""
    lines = []
    for table, per_tenant in differences.rows.items():
        detail = ", ".join(f"tenant {tenant_id}: {rows}" for tenant_id, rows in per_tenant.items())
        rows = sum(per_tenant.values())
        lines.append(f"{table}: {rows} rows differ" + (f" ({detail})" if detail else ""))
    lines.append(f"{differences.total} differences")
    return lines


def rollups_rebuild(*, tenant_id: int | None) -> tuple[tuple[int, ...], RollupDifferences]:
    """Rebuild the named tenant, or every tenant whose rollups differ; return them and a recheck."""
    if tenant_id is None:
        tenant_ids = care_rollups_differences(tenant_id=None).tenant_ids
    else:
        tenant_ids = (tenant_id,)
    for rebuilt in tenant_ids:
        care_rollups_rebuild(tenant_id=rebuilt)
    return tenant_ids, care_rollups_differences(tenant_id=tenant_id)


class Command(BaseCommand):
    help = (
        "Compare the stats day rollups with the care notes they are counted from (--check: "
        "prints the number of differing rows, exits 1 when there is any) or repair them "
        "(--rebuild: recounts each tenant that differs, or the --tenant given). Both are "
        "safe while the service is writing: the check reads one snapshot, a rebuild holds "
        "that tenant's writers off only while it recounts."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument(
            "--check",
            action="store_true",
            help="count the rollup rows that differ from the notes; exit 1 when any does",
        )
        action.add_argument(
            "--rebuild",
            action="store_true",
            help="recount the rollups of every tenant that differs (or of --tenant) from its notes",
        )
        parser.add_argument(
            "--tenant", type=int, help="only this tenant id (default: every tenant)"
        )

    def handle(self, *args, **options):
        tenant_id = options["tenant"]
        # Trusted cross-tenant maintenance: the system role sees every tenant's rows.
        with rls_system():
            if tenant_id is not None and not Tenant.objects.filter(pk=tenant_id).exists():
                raise CommandError(f"--tenant: no tenant has id {tenant_id}")
            if options["rebuild"]:
                rebuilt, differences = rollups_rebuild(tenant_id=tenant_id)
                listed = ", ".join(map(str, rebuilt)) or "none needed it"
                self.stdout.write(f"Rebuilt the rollups of tenants: {listed}")
            else:
                differences = care_rollups_differences(tenant_id=tenant_id)
        for line in differences_report(differences):
            self.stdout.write(line)
        if differences.total:
            raise CommandError(
                f"{differences.total} rollup rows differ from the notes; "
                "`manage.py stats_rollups --rebuild` repairs them."
            )
