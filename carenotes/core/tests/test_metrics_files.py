"""The multiprocess metrics directory: emptied at start, dead workers merged with totals kept."""

import threading
import time

from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from carenotes.core.metrics_files import (
    ARCHIVE_NAME,
    metrics_directory_prepare,
    metrics_files_locked,
    metrics_worker_retire,
)

HELP = "test metric"
COUNTER = ("t_requests", "t_requests_total")
BUCKET = ("t_seconds", "t_seconds_bucket")


def _worker_files(directory, pid: int, *, requests: float, fast: float, slow: float) -> None:
    """Write what a worker's prometheus_client would: a counter and a histogram's buckets."""
    file = MmapedDict(str(directory / f"counter_{pid}.db"))
    file.write_value(mmap_key(*COUNTER, ["route"], ["a"], HELP), requests, 0.0)
    file.close()
    file = MmapedDict(str(directory / f"histogram_{pid}.db"))
    file.write_value(mmap_key(*BUCKET, ["le"], ["0.1"], HELP), fast, 0.0)
    file.write_value(mmap_key(*BUCKET, ["le"], ["1.0"], HELP), slow, 0.0)
    file.write_value(mmap_key(*BUCKET, ["le"], ["+Inf"], HELP), 0, 0.0)
    file.close()


def _totals(directory) -> dict:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_a_dead_workers_counts_stay_in_the_totals_and_its_files_go(tmp_path):
    _worker_files(tmp_path, 101, requests=3, fast=2, slow=1)
    _worker_files(tmp_path, 102, requests=5, fast=1, slow=4)
    totals = _totals(tmp_path)
    assert totals[("t_requests_total", (("route", "a"),))] == 8

    metrics_worker_retire(tmp_path, 101)
    assert _totals(tmp_path) == totals
    assert not list(tmp_path.glob("*_101.db"))
    assert {path.name for path in tmp_path.glob("*.db")} == {
        "counter_102.db",
        "histogram_102.db",
        f"counter_{ARCHIVE_NAME}.db",
        f"histogram_{ARCHIVE_NAME}.db",
    }

    metrics_worker_retire(tmp_path, 102)
    metrics_worker_retire(tmp_path, 103)  # a worker that died before writing anything
    assert _totals(tmp_path) == totals
    # A new worker adds to the archived totals.
    _worker_files(tmp_path, 104, requests=1, fast=1, slow=0)
    after = _totals(tmp_path)
    assert after[("t_requests_total", (("route", "a"),))] == 9
    assert (
        after[("t_seconds_bucket", (("le", "+Inf"),))]
        == totals[("t_seconds_bucket", (("le", "+Inf"),))] + 1
    )


def test_preparing_empties_an_earlier_runs_samples_and_creates_a_missing_directory(tmp_path):
    _worker_files(tmp_path, 7, requests=1, fast=1, slow=0)
    (tmp_path / "notes.txt").write_text("not a sample file")
    metrics_directory_prepare(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    metrics_directory_prepare(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()


def test_a_merge_waits_for_a_scrape_in_progress(tmp_path):
    _worker_files(tmp_path, 9, requests=1, fast=1, slow=0)
    merged = threading.Event()
    with metrics_files_locked(tmp_path, shared=True):
        merge = threading.Thread(target=lambda: (metrics_worker_retire(tmp_path, 9), merged.set()))
        merge.start()
        time.sleep(0.2)
        # While a scrape reads, the dead worker's files are still there, unmerged.
        assert not merged.is_set()
        assert (tmp_path / "counter_9.db").exists()
    merge.join(timeout=5)
    assert merged.is_set()
    assert not (tmp_path / "counter_9.db").exists()
