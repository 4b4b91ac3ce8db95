"""The Kafka broker's jars: a lock of Maven Central coordinates and sha256 sums, fetched over
HTTP and checked, so running the broker needs no Maven.

`pulse/stack/kafka/jars.lock` is generated from `pom.xml` by `python -m pulse.stack.kafka_jars`
(the one step that needs `mvn`: a maintainer's, when the Kafka version changes).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from pulse.stack.service import Say

KAFKA_FILES = Path(__file__).parent / "kafka"
POM = KAFKA_FILES / "pom.xml"
LOCK = KAFKA_FILES / "jars.lock"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


class JarFetchError(RuntimeError):
    """A jar could not be fetched, or was not the one the lock names."""


@dataclass(frozen=True)
class Jar:
    """One line of the lock: `group:artifact:version sha256`."""

    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        path = "/".join([*self.group.split("."), self.artifact, self.version, self.file_name])
        return f"{repository.rstrip('/')}/{path}"

    @property
    def line(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version} {self.sha256}"


def read_lock(path: Path = LOCK) -> list[Jar]:
    """The jars a lock file names (comments and blank lines skipped)."""
    jars = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coordinates, sha256 = line.split()
        group, artifact, version = coordinates.split(":")
        jars.append(Jar(group, artifact, version, sha256))
    return jars


def lock_digest(path: Path = LOCK) -> str:
    """A short digest of the lock: the cache folder's name, so a version bump refetches."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def fetch(libs: Path, say: Say, repository: str = MAVEN_CENTRAL, lock: Path = LOCK) -> None:
    """Download every locked jar into `libs`, each checked against its sha256.

    The folder appears whole or not at all: a fetch cut short is never taken for a cache."""
    jars = read_lock(lock)
    staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        with httpx.Client(timeout=60, follow_redirects=True) as client:
            for number, jar in enumerate(jars, 1):
                say(f"fetching {jar.file_name} ({number}/{len(jars)})")
                _download(client, jar, jar.url(repository), staging / jar.file_name)
        staging.rename(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(client: httpx.Client, jar: Jar, url: str, target: Path) -> None:
    digest = hashlib.sha256()
    try:
        with client.stream("GET", url) as response, target.open("wb") as out:
            if response.status_code != 200:
                raise JarFetchError(f"{url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise JarFetchError(f"{url}: {exc}") from None
    if digest.hexdigest() != jar.sha256:
        raise JarFetchError(
            f"{url}: sha256 {digest.hexdigest()} is not the locked {jar.sha256} "
            f"(pulse/stack/kafka/jars.lock)"
        )


def lock_from_pom(mvn: str, pom: Path = POM) -> list[Jar]:
    """The runtime jars `pom` resolves to, through Maven (a maintainer's step)."""
    with tempfile.TemporaryDirectory() as work:
        listing = Path(work) / "list.txt"
        libs = Path(work) / "libs"
        for goal in (
            ["dependency:list", f"-DoutputFile={listing}", "-DoutputAbsoluteArtifactFilename"],
            ["dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
        ):
            subprocess.run(
                [mvn, "-q", "-B", "-f", str(pom), *goal, "-DincludeScope=runtime"], check=True
            )
        jars = []
        for line in listing.read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) < 5 or parts[2] != "jar":
                continue
            group, artifact, _, version = parts[:4]
            data = (libs / f"{artifact}-{version}.jar").read_bytes()
            jars.append(Jar(group, artifact, version, hashlib.sha256(data).hexdigest()))
    return sorted(jars, key=lambda jar: (jar.group, jar.artifact))


def main() -> None:
    """Rewrite the lock from the pom: `python -m pulse.stack.kafka_jars [mvn]`."""
    mvn = sys.argv[1] if len(sys.argv) > 1 else shutil.which("mvn") or "mvn"
    jars = lock_from_pom(mvn)
    header = [
        "# The Kafka broker's runtime jars (pom.xml resolved by Maven): coordinates and sha256.",
        "# Regenerate after changing pom.xml: python -m pulse.stack.kafka_jars",
    ]
    LOCK.write_text("\n".join(header + [jar.line for jar in jars]) + "\n")
    print(f"{LOCK}: {len(jars)} jars")  # noqa: T201  # a maintainer's command-line tool


if __name__ == "__main__":
    main()
