"""`make bench-audit` machinery: the bare setting writes no record, the audited ones one each."""

import pytest

from bench import audit as bench_audit

pytestmark = pytest.mark.django_db


def test_the_settings_differ_by_exactly_the_audit_record():
    tenant_id, key = bench_audit.fixture(notes=3)
    assert bench_audit.fixture(notes=3)[0] == tenant_id  # made once, reused
    result = bench_audit.bench(tenant_id=tenant_id, key=key, rounds=3, per_round=2, page_size=2)
    assert result["records_written"] == {"bare": 0, "audited": 6, "audited_durable": 6}
    assert set(result["ratio_to_bare"]) == {"audited", "audited_durable"}
    assert result["requests_per_setting"] == 6


def test_bad_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench_audit.main(["--page-size", "500"])
    assert "--page-size must be between 1 and 200, got 500" in capsys.readouterr().err
