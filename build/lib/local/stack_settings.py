"""What stays the same from one `make dev` to the next: ports and the API token.

Kept in `<data dir>/stack.json` on the first run, so that an exported
DATABASE_URL and a dashboard sign-in keep working after a restart. Each can be
overridden (flags of `make dev`, API_TOKEN in the environment); an override is
remembered too. A remembered port another process has taken meanwhile is
replaced by a free one, and the change is said.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from local.embedded_postgres import free_port

FILE_NAME = "stack.json"


@dataclass
class StackSettings:
    postgres_port: int
    api_port: int
    api_token: str

    @classmethod
    def load(
        cls,
        data_dir: Path,
        *,
        postgres_port: int | None = None,
        api_port: int | None = None,
        api_token: str | None = None,
    ) -> tuple[StackSettings, list[str]]:
        """The settings to run with, and what changed from the remembered ones (to tell the user)."""
        path = data_dir / FILE_NAME
        remembered: dict[str, object] = {}
        if path.exists():
            try:
                remembered = json.loads(path.read_text())
            except json.JSONDecodeError:
                remembered = {}
        changes: list[str] = []

        def port(name: str, wanted: int | None) -> int:
            if wanted:
                return wanted
            old = remembered.get(name)
            if isinstance(old, int) and available(old):
                return old
            new = free_port()
            if isinstance(old, int):
                changes.append(f"{name.replace('_', ' ')} {old} is in use: now {new}")
            return new

        token = api_token or remembered.get("api_token")
        settings = cls(
            postgres_port=port("postgres_port", postgres_port),
            api_port=port("api_port", api_port),
            api_token=token if isinstance(token, str) and token else secrets.token_urlsafe(24),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(settings), indent=2) + "\n")
        path.chmod(0o600)  # holds the token
        return settings, changes


def available(port: int) -> bool:
    """Whether nothing listens on the loopback port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
