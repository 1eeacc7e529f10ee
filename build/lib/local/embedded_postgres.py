"""A throwaway PostgreSQL server built from the system's PostgreSQL binaries.

Used by the tests, the benchmarks and the local stack. `initdb` and `pg_ctl`
refuse to run as root, so when we are root every server command runs as the
`postgres` system user (through `runuser`) on a data directory that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# Settings that make a disposable server fast. Durability is irrelevant for a
# test database; benchmarks pass their own settings.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

INSTALL_HINT = (
    "PostgreSQL server binaries not found. Install them with "
    "'apt-get install -y postgresql' (Debian/Ubuntu) or set PG_BINDIR to the "
    "directory that holds pg_ctl and initdb."
)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be found, initialised or started."""


def find_bindir() -> Path:
    """Locate the directory with `initdb` and `pg_ctl`."""
    candidates: list[str] = []
    if env := os.environ.get("PG_BINDIR"):
        candidates.append(env)
    # pg_config on Debian belongs to libpq-dev and may point at the client's
    # bindir only; the versioned server directories are the reliable place.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    for candidate in candidates:
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise EmbeddedPostgresError(INSTALL_HINT)


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server on loopback, owned by this process.

    `datadir` survives `stop()`, so a later `start()` on the same directory
    resumes with the same data (the local stack relies on this).
    """

    datadir: Path
    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    user: str = "postgres"
    bindir: Path | None = None

    def __post_init__(self) -> None:
        self.datadir = Path(self.datadir).absolute()
        self.bindir = self.bindir or find_bindir()
        if not self.port:
            self.port = free_port()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def _prepare_datadir(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            # The postgres user must reach the directory through every parent.
            for parent in [self.datadir, *self.datadir.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
            shutil.chown(self.datadir, "postgres", "postgres")
        self.datadir.chmod(0o700)

    @property
    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare_datadir()
        if not self.initialised:
            self._run(["initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"])

    def start(self) -> None:
        self.init()
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.datadir}"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        logfile = self.datadir / "server.log"
        self._run(
            ["pg_ctl", "-D", str(self.datadir), "-l", str(logfile), "-o", " ".join(options), "-w", "-t", "60", "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run(["pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        """The postmaster's process id (its first line of postmaster.pid)."""
        return int((self.datadir / "postmaster.pid").read_text().splitlines()[0])

    @property
    def running(self) -> bool:
        return self._run(["pg_ctl", "-D", str(self.datadir), "status"], check=False).returncode == 0

    def create_database(self, dbname: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')  # name comes from our own code


@contextmanager
def temporary_postgres(settings: dict[str, str] | None = None) -> Iterator[EmbeddedPostgres]:
    """Start a server in a fresh temporary directory; remove it afterwards."""
    base = Path(tempfile.mkdtemp(prefix="jobqueue-pg-"))
    server = EmbeddedPostgres(base / "data", settings=dict(FAST_SETTINGS if settings is None else settings))
    try:
        server.start()
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
