"""The embedded Redis: started on a unix socket, joined by a second user, stopped by its owner."""

from __future__ import annotations

from pathlib import Path

import redis

from services.embedded_redis import EmbeddedRedis


def test_starts_answers_and_stops(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path)
    with embedded as url:
        assert url == f"unix://{tmp_path.resolve() / 'redis.sock'}"
        client = redis.Redis(unix_socket_path=str(embedded.socket_path))
        assert client.ping()
        client.set("k", "v")
        # A second process pointed at the same directory joins the running server instead of fighting it.
        guest = EmbeddedRedis(tmp_path)
        assert guest.start() == url
        guest.stop()
        assert client.get("k") == b"v"
        client.close()
    assert not embedded.socket_path.exists()


def test_long_data_dir_falls_back_to_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as url:
        assert len(url.removeprefix("unix://")) <= 107
        assert redis.Redis.from_url(url).ping()
