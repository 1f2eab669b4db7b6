"""Runs wrk (a compiled HTTP load generator) and returns its latency percentiles as numbers."""

import json
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

WRK_THREADS = 2
RESULT_MARKER = "WRK_RESULT "
# wrk prints its summary through this Lua hook; percentiles are in microseconds.
DONE_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,'
    .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms), errors, and wrk's own CPU use."""

    url: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    generator_cpu_share: float  # wrk's CPU seconds / wall seconds (cores it kept busy)

    def as_dict(self) -> dict:
        return asdict(self)


def median_of(results: list[WrkResult]) -> WrkResult:
    """Combine interleaved runs of one endpoint: medians of rates and percentiles."""
    first = results[0]
    return WrkResult(
        url=first.url,
        connections=first.connections,
        seconds=round(sum(r.seconds for r in results), 3),
        requests=sum(r.requests for r in results),
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p95_ms=statistics.median(r.p95_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        mean_ms=statistics.median(r.mean_ms for r in results),
        errors=sum(r.errors for r in results),
        generator_cpu_share=statistics.median(r.generator_cpu_share for r in results),
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def parse_wrk_output(output: str) -> dict:
    """Return the JSON summary the done() hook printed; raise if wrk printed none."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise RuntimeError(f"wrk printed no summary:\n{output}")


def run_wrk(
    *,
    url: str,
    connections: int,
    seconds: float,
    headers: dict[str, str],
    script_dir: Path,
) -> WrkResult:
    """Load ``url`` with ``connections`` keep-alive connections for ``seconds``."""
    script = script_dir / "wrk_done.lua"
    script.write_text(DONE_SCRIPT)
    command = [
        "wrk",
        f"--threads={min(WRK_THREADS, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={script}",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    command.append(url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = parse_wrk_output(completed.stdout)
    duration = summary["duration_us"] / 1e6
    return WrkResult(
        url=url,
        connections=connections,
        seconds=round(duration, 3),
        requests=summary["requests"],
        rps=round(summary["requests"] / duration, 1),
        p50_ms=summary["p50_us"] / 1000,
        p95_ms=summary["p95_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        mean_ms=round(summary["mean_us"] / 1000, 3),
        errors=summary["socket_errors"] + summary["non_2xx"],
        generator_cpu_share=round(cpu / wall, 3),
    )
