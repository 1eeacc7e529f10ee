"""A throwaway PgBouncer in transaction mode in front of an embedded Postgres.

Used by the tests that prove the queue and the functions hold no session
state: in transaction pooling, each transaction of a client may run on a
different server connection, and PgBouncer refuses startup parameters it does
not know (such as `options`), as it does in production. PgBouncer refuses to
run as root, so as root it runs as the `postgres` system user, like the
embedded server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from local.embedded_postgres import EmbeddedPostgres, free_port

INSTALL_HINT = "pgbouncer not found: install it with 'apt-get install -y pgbouncer' (Debian/Ubuntu)"
START_TIMEOUT_S = 15.0


class EmbeddedPgBouncerError(RuntimeError):
    """PgBouncer could not be found or started."""


def find_pgbouncer() -> str:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise EmbeddedPgBouncerError(INSTALL_HINT)


@dataclass
class EmbeddedPgBouncer:
    """PgBouncer on loopback; every database of `server` is reachable through it by name."""

    server: EmbeddedPostgres
    workdir: Path
    pool_size: int = 4  # server connections per database: fewer than the clients, so they are shared
    pool_mode: str = "transaction"
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.server.user}@{self.host}:{self.port}/{dbname}"

    @property
    def logfile(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = self.workdir / "userlist.txt"
        users.write_text(f'"{self.server.user}" ""\n')
        config = self.workdir / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={self.server.host} port={self.server.port}",
                    "[pgbouncer]",
                    f"listen_addr = {self.host}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    f"pool_mode = {self.pool_mode}",
                    f"default_pool_size = {self.pool_size}",
                    "max_client_conn = 500",
                    f"logfile = {self.logfile}",
                    f"pidfile = {self.workdir / 'pgbouncer.pid'}",
                    f"admin_users = {self.server.user}",
                    # A dropped test database must not leave its server connections behind for long.
                    "server_idle_timeout = 5",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            for path in (users, config):
                shutil.chown(path, "postgres")
            # The postgres user must reach the directory through every parent.
            for parent in self.workdir.parents:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        return config

    def start(self) -> None:
        command = [find_pgbouncer(), str(self._write_config())]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise EmbeddedPgBouncerError(f"pgbouncer exited at start: {error.strip() or self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)  # polling for the port, not timing anything
        self.stop()
        raise EmbeddedPgBouncerError(f"pgbouncer did not listen on port {self.port}: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.logfile.read_text().splitlines()[-5:])
        except OSError:
            return "no log"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


@contextmanager
def temporary_pgbouncer(server: EmbeddedPostgres, **settings: int | str) -> Iterator[EmbeddedPgBouncer]:
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as workdir:
        bouncer = EmbeddedPgBouncer(server, Path(workdir), **settings)  # type: ignore[arg-type]
        bouncer.start()
        try:
            yield bouncer
        finally:
            bouncer.stop()
