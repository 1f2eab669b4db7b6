"""`make stop` stops everything `make run` started; a warm `make run` skips collectstatic."""

import urllib.error
import urllib.request

import pytest

# `make` echoes each recipe line it runs; a warm start must not run this one.
COLLECTSTATIC_LINE = "manage.py collectstatic"
# The target is 5 s on an idle machine; CI shares two cores with other work.
WARM_START_BOUND_SECONDS = 20.0


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def _stop(checkout) -> None:
    result = checkout.run("make", "stop", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    checkout.server.wait(timeout=60)


@pytest.mark.slow
def test_make_stop_leaves_no_process_of_make_run(checkout):
    seconds = checkout.make_run()
    print(f"first make run answered /healthz after {seconds:.1f}s")
    started = checkout.processes()
    commands = " | ".join(started.values())
    # gunicorn (devenv.py serve and its workers), PostgreSQL and Redis are all there to stop.
    assert "devenv.py serve" in commands and "postgres" in commands and "redis" in commands
    assert (checkout.path / ".data" / "gunicorn.pid").exists()
    _stop(checkout)
    assert checkout.processes() == {}
    assert _refused(f"{checkout.base_url}/healthz")
    assert not (checkout.path / ".data" / "gunicorn.pid").exists()
    # make run's own process ended with gunicorn's clean exit.
    assert checkout.server.returncode == 0, checkout.log()


@pytest.mark.slow
def test_a_warm_make_run_skips_collectstatic_and_answers_quickly(checkout):
    if checkout.server is None:
        checkout.make_run()
        _stop(checkout)
    seconds = checkout.make_run(timeout=120)
    print(f"warm make run (servers stopped) answered /healthz after {seconds:.1f}s")
    assert COLLECTSTATIC_LINE not in checkout.log()
    assert seconds < WARM_START_BOUND_SECONDS, checkout.log()
    _stop(checkout)
    assert checkout.processes() == {}
