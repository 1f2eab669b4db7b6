"""Demo names, and what a seed derives from them: slugs, usernames, API keys and passwords."""

import hashlib
import re

from tenants.models import Role

# Generated rows are recognised by these names; --reset deletes exactly these.
SEED_TAG = "demo-{seed}"
SEED_TENANT_SLUG_RE = r"^demo-[0-9]+-t[0-9]+$"
SEED_USERNAME_RE = r"^demo-[0-9]+-"
_SEED_OF_USERNAME = re.compile(r"^demo-([0-9]+)-")

TENANT_NAMES = (
    "Oakwood Care",
    "Riverside Homes",
    "Meadowbank Living",
    "Harbour View Care",
    "Willow Lodge Group",
    "Beacon Hill Care",
    "Silver Birch Homes",
    "Heather Grange",
)
FACILITY_NAMES = ("House", "Court", "Lodge", "Gardens", "Manor", "View", "Place", "Hall")
FIRST_NAMES = (
    "Margaret", "Arthur", "Joan", "Harold", "Dorothy", "Kenneth", "Elsie", "Frank",
    "Irene", "Albert", "Edna", "Walter", "Mabel", "Ernest", "Gladys", "Stanley",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
    "Patel", "Wright", "Green", "Walker", "Hughes", "Edwards", "Khan", "Clarke",
)  # fmt: skip


def seed_tag(seed: int) -> str:
    """Return the prefix of every slug and username a run with ``seed`` creates."""
    return SEED_TAG.format(seed=seed)


def username_seed(username: str) -> int | None:
    """Return the seed a demo username was generated with, or None for any other name."""
    match = _SEED_OF_USERNAME.match(username)
    return int(match.group(1)) if match else None


def tenant_slug(*, seed: int, number: int) -> str:
    """Return the slug of the run's tenant ``number`` (1-based)."""
    return f"{seed_tag(seed)}-t{number}"


def tenant_name(index: int) -> str:
    """Return the display name of the tenant at 0-based ``index`` (numbered once names repeat)."""
    base = TENANT_NAMES[index % len(TENANT_NAMES)]
    return base if index < len(TENANT_NAMES) else f"{base} {index + 1}"


def facility_name(*, tenant_index: int, number: int, kind: str) -> str:
    """Return a facility's name: the tenant's first word, a kind of building, a number."""
    return f"{TENANT_NAMES[tenant_index % len(TENANT_NAMES)].split()[0]} {kind} {number}"


def superuser_username(seed: int) -> str:
    """Return the username of the run's superuser."""
    return f"{seed_tag(seed)}-superuser"


def staff_roles(staff: int) -> list[tuple[str, str]]:
    """Return (role, username suffix) for each staff member of a tenant."""
    carers = staff - 2
    width = max(2, len(str(carers)))
    roles = [(Role.ADMIN.value, "admin"), (Role.MANAGER.value, "manager")]
    return roles + [(Role.CARER.value, f"carer{n:0{width}d}") for n in range(1, carers + 1)]


def staff_username(*, seed: int, tenant_number: int, suffix: str) -> str:
    """Return the username of a staff member of the run's tenant ``tenant_number``."""
    return f"{tenant_slug(seed=seed, number=tenant_number)}-{suffix}"


def demo_token_key(*, seed: int, username: str) -> str:
    """Return the reproducible API key of a demo user (40 hex characters)."""
    return hashlib.sha256(f"carenotes-seed:{seed}:{username}".encode()).hexdigest()[:40]


def demo_password(seed: int) -> str:
    """Return the password every user of the run with ``seed`` gets (derived from the seed)."""
    return "demo-" + hashlib.sha256(f"carenotes-password:{seed}".encode()).hexdigest()[:12]
