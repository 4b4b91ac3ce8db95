"""The Kafka jar lock: parsed, fetched over HTTP, each jar checked against its sha256."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pulse.stack.kafka_jars import LOCK, Jar, JarFetchError, fetch, read_lock


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Maven-shaped folder served over HTTP on 127.0.0.1."""
    root = tmp_path / "maven"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    thread.join()


def _publish(root: Path, group: str, artifact: str, version: str, content: bytes) -> Jar:
    folder = root.joinpath(*group.split("."), artifact, version)
    folder.mkdir(parents=True)
    (folder / f"{artifact}-{version}.jar").write_bytes(content)
    return Jar(group, artifact, version, hashlib.sha256(content).hexdigest())


def _lock(path: Path, jars: list[Jar]) -> Path:
    path.write_text("# a comment\n\n" + "".join(f"{jar.line}\n" for jar in jars))
    return path


def test_the_shipped_lock_names_the_broker_and_its_logging() -> None:
    jars = read_lock(LOCK)
    names = {(jar.group, jar.artifact) for jar in jars}
    assert ("org.apache.kafka", "kafka_2.13") in names
    assert ("org.apache.logging.log4j", "log4j-core") in names
    assert all(len(jar.sha256) == 64 for jar in jars)
    assert len({jar.artifact for jar in jars}) == len(jars)  # one version of each


def test_fetch_downloads_every_locked_jar(repository: tuple[str, Path], tmp_path: Path) -> None:
    url, root = repository
    jars = [
        _publish(root, "org.example", "one", "1.0", b"first jar"),
        _publish(root, "com.example.deep", "two_2.13", "2.0.1", b"second jar"),
    ]
    libs = tmp_path / "cache" / "libs"
    libs.parent.mkdir()
    said: list[str] = []
    fetch(libs, said.append, url, _lock(tmp_path / "jars.lock", jars))
    assert sorted(path.name for path in libs.iterdir()) == ["one-1.0.jar", "two_2.13-2.0.1.jar"]
    assert (libs / "one-1.0.jar").read_bytes() == b"first jar"
    assert len(said) == 2 and "(2/2)" in said[-1]


@pytest.mark.parametrize("fault", ["tampered", "missing"])
def test_a_jar_that_is_not_the_locked_one_leaves_no_cache(
    repository: tuple[str, Path], tmp_path: Path, fault: str
) -> None:
    url, root = repository
    good = _publish(root, "org.example", "one", "1.0", b"first jar")
    bad = _publish(root, "org.example", "two", "1.0", b"second jar")
    if fault == "tampered":
        bad = Jar(bad.group, bad.artifact, bad.version, hashlib.sha256(b"other").hexdigest())
    else:
        bad = Jar(bad.group, "three", bad.version, bad.sha256)
    libs = tmp_path / "cache" / "libs"
    libs.parent.mkdir()
    with pytest.raises(JarFetchError) as error:
        fetch(libs, lambda _: None, url, _lock(tmp_path / "jars.lock", [good, bad]))
    assert ("is not the locked" if fault == "tampered" else "HTTP 404") in str(error.value)
    assert "\n" not in str(error.value)
    assert list(libs.parent.iterdir()) == []  # neither libs nor a partial folder
