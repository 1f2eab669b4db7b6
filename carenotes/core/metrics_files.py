"""The multiprocess metrics directory: emptied at start, a dead worker's files merged away.

prometheus_client writes one counter file and one histogram file per worker process, and a
scrape reads every file in the directory. gunicorn recycles workers (``max_requests``), so
without care the directory gains two files per recycled worker, for ever, and every scrape
reads them all. Instead, when a worker exits, gunicorn's master adds its samples into one
archive file per type and deletes its files: the totals stay exactly the same (counters
never go back) and the directory holds live workers plus two archives. A scrape and a merge
exclude each other through a lock file, so a scrape never counts a worker twice or not at
all.

No Django import: gunicorn's master calls this (gunicorn.conf.py) without loading the app.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

# The types whose samples add up across processes (no gauges are defined).
SUMMED_TYPES = ("counter", "histogram")
ARCHIVE_NAME = "archive"
LOCK_FILE = ".lock"


@contextmanager
def metrics_files_locked(directory: str | Path, *, shared: bool) -> Iterator[None]:
    """Hold the directory's lock: shared to read the files, exclusive to merge them."""
    with open(Path(directory) / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def metrics_directory_prepare(directory: str | Path) -> None:
    """Create the directory, or empty it of an earlier run's samples."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def metrics_worker_retire(directory: str | Path, pid: int) -> None:
    """Add a dead worker's counts into the archives and delete its files (totals unchanged)."""
    path = Path(directory)
    mark_process_dead(pid, str(path))
    with metrics_files_locked(path, shared=False):
        for kind in SUMMED_TYPES:
            dead = path / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            archive = MmapedDict(str(path / f"{kind}_{ARCHIVE_NAME}.db"))
            try:
                for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(
                    str(dead)
                ):
                    total, _ = archive.read_value(key)
                    archive.write_value(key, total + value, 0.0)
            finally:
                archive.close()
            dead.unlink()
