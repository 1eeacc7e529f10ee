"""The project that is built, run locally or deployed: its folder and its platform.

A project is a folder with template.yaml, functions/, events/, samconfig.toml and a
pyproject.toml whose `[tool.pgjobs]` table names the module of its job types:

    [tool.pgjobs]
    platform = "pods.jobs"            # module[:attribute] of the runtime Catalog
    local = "podslocal.stack:PODS"    # optional: the platform's stand-ins in the local stack

This repository is one (the pods platform); `jobs init` writes another. The project is the
folder named by JOBS_PROJECT_ROOT, else the nearest folder at or above the working directory
whose pyproject.toml has that table, else the source checkout this package runs from.
JOBS_PLATFORM, when set, names the platform instead of the table (as the functions get it).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from jobqueue import ConfigurationError
from runtime import catalog

ROOT_VARIABLE: Final = "JOBS_PROJECT_ROOT"
TABLE: Final = "pgjobs"
# Where this package's sources live when it runs from a checkout (shared/deploy/project.py).
_CHECKOUT: Final = Path(__file__).resolve().parents[2]
FUNCTIONS: Final = ("worker", "scheduler", "maintenance", "api")


@dataclass(frozen=True)
class Project:
    root: Path
    platform: str
    local: str | None = None

    @property
    def template(self) -> Path:
        return self.root / "template.yaml"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def samconfig(self) -> Path:
        return self.root / "samconfig.toml"


def read(root: Path, env: Mapping[str, str] = os.environ) -> Project:
    """The project in `root` (its pyproject.toml's [tool.pgjobs] table)."""
    path = root / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get(TABLE)
    except FileNotFoundError:
        raise ConfigurationError(f"{root} is not a project: it has no pyproject.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path} has no [tool.{TABLE}] table naming the platform's module")
    platform = env.get(catalog.VARIABLE, "").strip() or table.get("platform")
    if not isinstance(platform, str) or not platform:
        raise ConfigurationError(f"{path}: [tool.{TABLE}] platform must name the module of the job types")
    local = table.get("local")
    if local is not None and not isinstance(local, str):
        raise ConfigurationError(f"{path}: [tool.{TABLE}] local must be a module[:attribute] string")
    return Project(root.resolve(), platform, local)


def _declares(folder: Path) -> bool:
    try:
        document = tomllib.loads((folder / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(document.get("tool", {}).get(TABLE), dict)


def find(start: Path | None = None, env: Mapping[str, str] = os.environ) -> Project:
    """The current project (see the module's docstring for where it is looked for)."""
    named = env.get(ROOT_VARIABLE, "").strip()
    if named:
        return read(Path(named), env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _declares(folder):
            return read(folder, env)
    if _declares(_CHECKOUT):
        return read(_CHECKOUT, env)
    raise ConfigurationError(
        f"no project here ({here}): run `jobs init DIR` to make one, or set {ROOT_VARIABLE} to a project's folder"
    )


def on_path(found: Project) -> Project:
    """Make the project's own packages importable here, also when it is not installed (run from its folder)."""
    if str(found.root) not in sys.path:
        sys.path.insert(0, str(found.root))
    return found


def entry_point(function: str) -> str:
    """functions/<function>/app.py: the Lambda handler (`app.handler`), which is runtime.functions.<function>'s."""
    if function not in FUNCTIONS:
        raise ValueError(f"no function {function!r}: the functions are {', '.join(FUNCTIONS)}")
    return (
        f'"""The {function} function\'s entry point (template.yaml: Handler app.handler).\n\n'
        f"Its code is runtime.functions.{function}, the same for every project; this file is what\n"
        f'template.yaml\'s CodeUri points at."""\n\n'
        f"from runtime.functions.{function} import handler\n\n"
        f'__all__ = ["handler"]\n'
    )
