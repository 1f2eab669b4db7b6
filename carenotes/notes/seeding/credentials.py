"""The demo credentials: the JSON file a run writes (merged on --append) and how it is printed."""

import json
from pathlib import Path

from django.conf import settings

from carenotes.notes.seeding.names import demo_password, superuser_username, username_seed
from carenotes.notes.seeding.structure import TenantPlan
from tenants.models import Role

DEFAULT_CREDENTIALS_PATH = Path(settings.BASE_DIR) / ".data" / "demo-credentials.json"


def credentials_build(*, seed: int, superuser: str, plans: list[TenantPlan]) -> dict:
    """Return the credentials of one run: its data set, superuser and tenants' users.

    ``superuser`` and ``seed`` at the top name the latest run; ``data_sets`` lists every
    run in the file with the password all of its users share.
    """
    password = demo_password(seed)
    return {
        "seed": seed,
        "superuser": {"username": superuser, "password": password, "admin_login": True},
        "data_sets": [{"seed": seed, "password": password, "superuser": superuser}],
        "tenants": [
            {
                "tenant_id": plan.tenant.pk,
                "seed": seed,
                "name": plan.tenant.name,
                "timezone": plan.tenant.timezone,
                "facility_ids": plan.facility_ids,
                "end_date": plan.window.end_date.isoformat(),
                "users": plan.users,
            }
            for plan in plans
        ],
    }


def _tenant_seed(tenant: dict) -> int:
    # Files written before tenants carried their seed: every username starts with it.
    seed = tenant.get("seed")
    if seed is None:
        seed = username_seed(tenant["users"][0]["username"])
    if seed is None:
        raise KeyError(f"seed of tenant {tenant['tenant_id']}")
    return seed


def credentials_data_sets(credentials: dict) -> list[dict]:
    """Return each data set of a credentials file: its seed, password and superuser.

    Files written before data sets were recorded get them from their tenants' seeds (the
    password and the superuser's name are functions of the seed).
    """
    if "data_sets" in credentials:
        return credentials["data_sets"]
    seeds = dict.fromkeys(_tenant_seed(tenant) for tenant in credentials["tenants"])
    return [
        {"seed": seed, "password": demo_password(seed), "superuser": superuser_username(seed)}
        for seed in seeds
    ]


def credentials_write(*, credentials: dict, path: Path, append: bool = False) -> dict:
    """Write the demo credentials (owner-only, they hold API keys); on append keep the old.

    Returns what was written: on append the earlier data sets and tenants come first.
    """
    data = credentials
    if append and path.exists():
        try:
            previous = json.loads(path.read_text())
            tenants = [{**t, "seed": _tenant_seed(t)} for t in previous["tenants"]]
            data = {
                **credentials,
                "data_sets": credentials_data_sets(previous) + credentials["data_sets"],
                "tenants": tenants + credentials["tenants"],
            }
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # an unreadable old file is replaced by this run's data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def credentials_table(credentials: dict) -> list[str]:
    """Return the demo credentials as aligned text lines for a terminal, by data set.

    Each data set's heading names the password its users share (runs with another seed
    have another one) and its superuser.
    """
    tenants = credentials.get("tenants", [])
    lines = []
    for data_set in credentials_data_sets(credentials):
        seed = data_set["seed"]
        lines += [
            f"seed {seed}: password {data_set['password']} for every demo-{seed}-* user; "
            f"superuser {data_set['superuser']} (/admin/)",
            f"{'tenant':>6}  {'time zone':<20} {'username':<26} {'role':<8} token",
        ]
        for tenant in (t for t in tenants if _tenant_seed(t) == seed):
            for user in tenant["users"]:
                admin = "  (/admin/ too)" if user.get("admin_login") else ""
                lines.append(
                    f"{tenant['tenant_id']:>6}  {tenant['timezone']:<20} "
                    f"{user['username']:<26} {user['role']:<8} {user['token']}{admin}"
                )
    return lines


def credentials_curl(credentials: dict, *, base_url: str) -> str | None:
    """Return a ready-to-paste curl line for the stats endpoint of the first tenant."""
    for tenant in credentials.get("tenants", []):
        manager = next((u for u in tenant["users"] if u["role"] == Role.MANAGER), None)
        if manager is None:
            continue
        facilities = ",".join(str(f) for f in tenant["facility_ids"])
        return (
            f'curl -H "Authorization: Token {manager["token"]}" '
            f'"{base_url.rstrip("/")}/api/care-stats/?tenant_id={tenant["tenant_id"]}'
            f'&facility_ids={facilities}&date={tenant["end_date"]}"'
        )
    return None
