"""`make bench` machinery on a tiny data set: seeds, serves, measures and reports."""

import json
import shutil

import pytest

from bench import report
from bench import stats as bench_stats

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_bench_runs_end_to_end_on_a_tiny_data_set(tmp_path):
    performance_md = tmp_path / "PERFORMANCE.md"
    performance_md.write_text(f"# P\n{report.SECTION_START}\n{report.SECTION_END}\n")
    exit_code = bench_stats.main(
        [
            "--sizes=tiny",
            "--seconds=1",
            "--rounds=1",
            "--repeat=3",
            f"--out={tmp_path}",
            f"--performance-md={performance_md}",
        ]
    )
    assert exit_code == 0
    run = json.loads((tmp_path / "stats-latest.json").read_text())
    [size] = run["sizes"]
    assert size["notes"] == bench_stats.SIZES["tiny"].notes
    assert size["busiest_tenant_day"]["notes"] > 0
    for bucket in ("latency", "load"):
        for label in report.LOAD_LABELS:
            assert size[bucket][label]["requests"] > 0
            assert size[bucket][label]["errors"] == 0, (bucket, label)
    assert size["explain"]["index_only"] is True
    ranges = size["ranges"]
    assert min(ranges["true_miss_p50_ms"].values()) > 0
    assert min(ranges["warm_hit_p50_ms"].values()) > 0
    assert ranges["range_notes"] > 0
    assert ranges["explain"]["index_only"] is True
    assert ranges["explain"]["heap_fetches"] == 0  # the rollups were vacuumed after seeding
    assert (tmp_path / "stats.png").stat().st_size > 0
    assert "### tiny: 2,000 notes over 5 tenants" in performance_md.read_text()
