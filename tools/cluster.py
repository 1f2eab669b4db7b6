"""`make cluster`: two gunicorn app nodes behind HAProxy on loopback, until Ctrl-C.

Both nodes serve the same DATABASE_URL and REDIS_URL with the same DJANGO_SECRET_KEY (make
sets them; every other variable passes through), so nothing a request needs lives in one
node. HAProxy (deploy/haproxy/haproxy.cfg, Debian package `haproxy`) checks each node's
/readyz, retries requests that could not reach a node, and replays idempotent ones that a
dying node left unanswered. `make load LOAD_HOST=http://127.0.0.1:8080` loads it.
system_tests/test_cluster.py drives the same classes.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tools.topology import find_program

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
START_TIMEOUT = 60.0
DEFAULT_LB_PORT = 8080
DEFAULT_NODE_PORTS = (8101, 8102)
DEFAULT_STATUS_PORT = 8404


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _wait(predicate, *, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")
        time.sleep(0.1)


@dataclass
class AppNode:
    """One gunicorn (gunicorn.conf.py) serving the app on 127.0.0.1:port."""

    port: int
    # Added to base_env (default: this process's environment).
    env: dict[str, str] = field(default_factory=dict)
    base_env: dict[str, str] | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    def start(self) -> None:
        output = self.log_path.open("ab") if self.log_path else None
        try:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    *("--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"),
                    "carenotes.wsgi",
                ],
                cwd=ROOT,
                env={**(os.environ if self.base_env is None else self.base_env), **self.env},
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                # Its own process group: kill() takes the master and its workers at once.
                start_new_session=True,
            )
        finally:
            if output:
                output.close()
        _wait(self.ready, what=f"app node on port {self.port}")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"app node on port {self.port} exited ({self.process.returncode})")
        try:
            return _get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the master and its workers: the node vanishes mid-request."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=START_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=START_TIMEOUT)


@dataclass
class LoadBalancer:
    """HAProxy with deploy/haproxy/haproxy.cfg in front of two app nodes."""

    program: str
    port: int
    status_port: int
    nodes: tuple[int, int]
    process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LB_BIND": f"127.0.0.1:{self.port}",
            "LB_STATS_BIND": f"127.0.0.1:{self.status_port}",
            "LB_NODE1": f"127.0.0.1:{self.nodes[0]}",
            "LB_NODE2": f"127.0.0.1:{self.nodes[1]}",
        }

    def start(self) -> None:
        config = str(HAPROXY_CONFIG)
        subprocess.run([self.program, "-c", "-q", "-f", config], env=self.env(), check=True)
        # -db: stay in the foreground, logs on stderr.
        self.process = subprocess.Popen([self.program, "-db", "-f", config], env=self.env())
        _wait(lambda: self.nodes_up() == len(self.nodes), what="HAProxy with both nodes up")

    def nodes_up(self) -> int:
        """Return how many nodes HAProxy's health checks currently see up."""
        if self.process.poll() is not None:
            raise RuntimeError(f"haproxy exited ({self.process.returncode})")
        try:
            status, body = _get(f"http://127.0.0.1:{self.status_port}/;csv")
        except OSError:
            return 0
        if status != 200:
            return 0
        rows = [line.split(",") for line in body.decode().splitlines()]
        # CSV columns: proxy name, server name, ..., status (the 18th).
        return sum(
            1
            for row in rows
            if len(row) > 17 and row[0] == "app" and row[1].startswith("node") and row[17] == "UP"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C, and SIGTERM (a supervisor; SIGINT is ignored in a background job), stop all.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_LB_PORT, help="port HAProxy listens on")
    parser.add_argument(
        "--node-ports",
        type=int,
        nargs=2,
        default=DEFAULT_NODE_PORTS,
        metavar=("PORT1", "PORT2"),
        help="ports of the two app nodes",
    )
    parser.add_argument(
        "--status-port",
        type=int,
        default=DEFAULT_STATUS_PORT,
        help="port of HAProxy's status page",
    )
    args = parser.parse_args(argv)
    program = find_program("haproxy")
    if program is None:
        parser.error("haproxy is not installed: install the Debian package 'haproxy'")

    nodes = [AppNode(port=port) for port in args.node_ports]
    balancer = LoadBalancer(
        program=program, port=args.port, status_port=args.status_port, nodes=tuple(args.node_ports)
    )
    running = []
    try:
        for server in (*nodes, balancer):
            server.start()
            running.append(server)
        print(
            f"[cluster] http://127.0.0.1:{args.port} -> nodes on {args.node_ports[0]} and "
            f"{args.node_ports[1]}; status http://127.0.0.1:{args.status_port}/ ; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        # A node that dies stays down (HAProxy routes around it); the cluster runs while
        # HAProxy does.
        reported = set()
        while balancer.process.poll() is None:
            for node in nodes:
                if node.process.poll() is not None and node.port not in reported:
                    reported.add(node.port)
                    print(f"[cluster] node on port {node.port} exited", file=sys.stderr)
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for server in reversed(running):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
