"""Tests of tools/devenv.py's embedded-server helpers."""

import redis

from tools import devenv


def test_a_missing_redis_socket_means_no_server_without_trying_to_connect(tmp_path, monkeypatch):
    # redis-py retries a refused connection with backoff for seconds: a warm `make run`
    # spent most of its start here, asking a server that had not been started yet.
    def connect(*args, **kwargs):
        raise AssertionError("tried to connect to a socket that does not exist")

    monkeypatch.setattr(redis, "Redis", connect)
    assert devenv._redis_ping(tmp_path / "redis.sock") is False
