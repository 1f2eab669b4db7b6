"""seed_notes credentials after --append: every printed password is the one its users have."""

import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from carenotes.notes import seeding
from carenotes.notes.tests.test_seed_notes import (
    SMALL,
    _call,
    _compact_tables_afterwards,  # noqa: F401 (autouse: compacts what these tests bloat)
    _small_args,
)

pytestmark = pytest.mark.django_db

HEADING = re.compile(
    r"^seed (?P<seed>[0-9]+): password (?P<password>\S+) for every demo-(?P=seed)-\* user; "
    r"superuser (?P<superuser>\S+) \(/admin/\)$"
)
ROW = re.compile(r"^ *[0-9]+  \S+ +(?P<username>\S+) ")


def _printed_passwords(output: str) -> dict[str, str]:
    """Return username -> password as the table tells it (each row under its heading)."""
    passwords, password = {}, None
    for line in output.splitlines():
        if heading := HEADING.match(line):
            password = heading["password"]
            passwords[heading["superuser"]] = password
        elif (row := ROW.match(line)) and password is not None:
            passwords[row["username"]] = password
    return passwords


def _demo_credentials(path) -> str:
    stdout = io.StringIO()
    call_command("demo_credentials", credentials=path, stdout=stdout)
    return stdout.getvalue()


def _assert_true(passwords: dict[str, str]) -> None:
    users = {u.username: u for u in get_user_model().objects.filter(username__in=passwords)}
    assert set(users) == set(passwords)
    wrong = [
        name for name, password in passwords.items() if not users[name].check_password(password)
    ]
    assert wrong == []


def test_after_append_each_data_set_is_printed_with_its_own_password(tmp_path):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    output = _call(*_small_args(seed=12), append=True, credentials=credentials)
    printed = _printed_passwords(output)
    # Both superusers and every tenant user of both seeds, each with their own password.
    assert len(printed) == 2 + 2 * SMALL["tenants"] * (2 + seeding.CARERS_WITH_TOKENS)
    assert {printed["demo-11-superuser"], printed["demo-12-superuser"]} == {
        seeding.demo_password(11),
        seeding.demo_password(12),
    }
    assert printed["demo-11-t1-admin"] == printed["demo-11-superuser"]
    assert printed["demo-12-t1-admin"] == printed["demo-12-superuser"]
    _assert_true(printed)
    assert _printed_passwords(_demo_credentials(credentials)) == printed


def test_the_appended_file_records_every_data_set_and_each_tenants_seed(tmp_path):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    _call(*_small_args(seed=12), append=True, credentials=credentials, quiet=True)
    data = json.loads(credentials.read_text())
    assert data["data_sets"] == [
        {
            "seed": seed,
            "password": seeding.demo_password(seed),
            "superuser": f"demo-{seed}-superuser",
        }
        for seed in (11, 12)
    ]
    assert [t["seed"] for t in data["tenants"]] == [11] * SMALL["tenants"] + [12] * SMALL["tenants"]
    # The top level still names the latest run, as readers of the earlier format expect.
    assert (data["seed"], data["superuser"]["username"]) == (12, "demo-12-superuser")
    for tenant in data["tenants"]:
        admin = tenant["users"][0]
        assert admin["password"] == seeding.demo_password(tenant["seed"])


def test_a_file_of_the_earlier_format_is_printed_and_appended_to_truthfully(tmp_path):
    # Written before data sets were recorded: one superuser, tenants without their seed.
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    data = json.loads(credentials.read_text())
    del data["data_sets"]
    for tenant in data["tenants"]:
        del tenant["seed"]
    credentials.write_text(json.dumps(data))
    printed = _printed_passwords(_demo_credentials(credentials))
    assert len(printed) == 1 + SMALL["tenants"] * (2 + seeding.CARERS_WITH_TOKENS)
    _assert_true(printed)

    output = _call(*_small_args(seed=12), append=True, credentials=credentials)
    printed = _printed_passwords(output)
    assert len(printed) == 2 + 2 * SMALL["tenants"] * (2 + seeding.CARERS_WITH_TOKENS)
    _assert_true(printed)
    assert [s["seed"] for s in json.loads(credentials.read_text())["data_sets"]] == [11, 12]
