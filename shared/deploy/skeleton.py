"""`jobs init DIR`: a new project with one job type, ready to test, run locally and deploy.

The project depends on pgjobs and holds only what is its own: its job types (a package with a
Catalog), the functions' entry points, template.yaml generated from the catalog, samconfig.toml,
sample events, the Lambda layers' recipes, a test suite that passes, a Makefile and a README.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from deploy import project, template
from jobqueue import ConfigurationError

_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# The third-party packages the functions import (the Lambda dependencies layer); a test keeps this
# repository's layers/dependencies/requirements.txt the same.
LAMBDA_REQUIREMENTS: Final = """\
# Third-party packages of the Lambda functions, built for arm64 by `sam build`.
psycopg[binary]>=3.2,<4
croniter>=2.0
aws-lambda-powertools[tracer]>=3.0
# boto3 travels with the botocore that the tracer brings, so the two always match.
boto3>=1.34
httpx>=0.27
psycopg-pool>=3.2
# The dashboard's templates (runtime.dashboard).
jinja2>=3.1
# The API's request and answer models, validated per request (runtime.api_models).
pydantic>=2.7
"""


def version() -> str:
    return metadata.version("pgjobs")


def default_requirement() -> str:
    return f"pgjobs=={version()}"


def with_extra(requirement: str, extra: str) -> str:
    """`pgjobs==1.0` -> `pgjobs[local]==1.0`; `pgjobs @ file:///w.whl` -> `pgjobs[local] @ file:///w.whl`."""
    match = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(.*)$", requirement)
    if not match:
        raise ConfigurationError(f"{requirement!r} is not a requirement (e.g. pgjobs==1.0)")
    return f"{match.group(1)}[{extra}]{' ' if match.group(2).startswith('@') else ''}{match.group(2)}"


def _package(name: str) -> str:
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in _OURS:
        raise ConfigurationError(f"{name!r} would make a package {package!r} that hides another module")
    return package


_OURS: Final = frozenset({"jobqueue", "runtime", "deploy", "local", "ops", "pods", "podslocal", "functions", "tests"})


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def _api_event(path: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) request with the local stack's token, as API Gateway sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost", "authorization": "Bearer local-dev-token"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "curl/8",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:10:05:00 +0000",
            "timeEpoch": 1795860300000,
        },
        "isBase64Encoded": False,
    }


SCHEDULE_EVENT: Final = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-28T10:05:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/jobs-tick"],
    "detail": {},
}


def files(name: str, requirement: str) -> dict[str, str]:
    """The new project's files (path -> text), template.yaml aside (rendered from its catalog)."""
    package = _package(name)
    title = name.replace("-", " ")
    files = {
        "pyproject.toml": f"""\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"
            description = "{title}: job types on a Postgres job queue, run as AWS Lambda functions"
            requires-python = ">=3.11"
            dependencies = ["{requirement}"]

            [project.optional-dependencies]
            # The local stack (jobs dev, jobs invoke) and the tests.
            dev = ["{with_extra(requirement, "local")}", "pytest>=8"]

            [tool.setuptools]
            packages = ["{package}"]

            # Where `jobs` finds this project's job types (jobs template, jobs dev, jobs invoke).
            [tool.pgjobs]
            platform = "{package}.jobs"

            [tool.pytest.ini_options]
            testpaths = ["tests"]
            """,
        f"{package}/__init__.py": f'"""{title}: its job types (jobs.py) and their handlers (handlers.py)."""\n',
        f"{package}/handlers.py": '''\
            """The job types' handlers: each takes a job and returns what is stored as its output.

            Raise JobError(..., should_retry=False) for data no retry can fix (the job fails at once);
            any other exception fails the attempt, which is retried as the queue's settings say.
            """

            from __future__ import annotations

            from typing import Any

            from jobqueue import Job, JobError


            def greet(job: Job) -> dict[str, Any]:
                data = job.data if isinstance(job.data, dict) else {}
                name = data.get("name")
                if not isinstance(name, str) or not name:
                    raise JobError("greet needs a non-empty string 'name'", should_retry=False)
                return {"greeting": f"Hello, {name}!"}
            ''',
        f"{package}/jobs.py": f'''\
            """{title}'s job types, each declared once: template.yaml (`jobs template`), the local stack
            (`jobs dev`) and the queues' settings all come from this catalog."""

            from __future__ import annotations

            from runtime.jobtypes import Catalog, CronEntry, JobType

            from {package} import handlers

            CATALOG = Catalog(
                name="{name}",
                description="{title}",
                dead_letter="{name}-failed",
                defaults={{"retry_limit": 3, "retry_delay": 30, "retry_backoff": True, "expire_in": 300}},
                job_types=(
                    JobType(
                        "greet",
                        handlers.greet,
                        "Greets someone (an example: replace it with your own job types)",
                        example={{"name": "world"}},
                        schedules=(CronEntry("0 9 * * 1-5", tz="Europe/Paris", data={{"name": "team"}}),),
                    ),
                ),
            )
            ''',
        "tests/__init__.py": "",
        "tests/test_jobs.py": f'''\
            """The job types, tried against a real Postgres: sent, run by the worker function, completed."""

            from __future__ import annotations

            from collections.abc import Iterator
            from pathlib import Path

            import pytest

            from deploy import template
            from jobqueue import Queue
            from local import invoke
            from local.embedded_postgres import temporary_postgres
            from runtime import catalog

            ROOT = Path(__file__).parents[1]


            @pytest.fixture(scope="session")
            def database_url() -> Iterator[str]:
                with temporary_postgres() as server:
                    server.create_database("jobs")
                    yield server.url("jobs")


            def test_template_is_generated_from_the_catalog() -> None:
                assert (ROOT / "template.yaml").read_text() == template.render(), "run `jobs template`"


            def test_each_example_completes_through_the_worker_function(database_url: str) -> None:
                env = {{"DATABASE_URL": database_url, catalog.VARIABLE: "{package}.jobs"}}
                with Queue(database_url) as queue:
                    queue.migrate()
                    catalog.register(queue, catalog.load(env))
                    for job_type in catalog.load(env).job_types:
                        if job_type.example is None:
                            continue
                        sent = queue.send(job_type.name, job_type.example)
                        worker = template.logical_id(job_type.name)
                        outcome = invoke.invoke(worker, ROOT / "events" / "schedule.json", overrides=env, timeout=60)
                        assert outcome.ok, outcome.output
                        job = queue.get_job(sent)
                        assert job is not None and job.state == "completed", job


            def test_bad_data_fails_at_once(database_url: str) -> None:
                env = {{"DATABASE_URL": database_url, catalog.VARIABLE: "{package}.jobs"}}
                with Queue(database_url) as queue:
                    queue.migrate()
                    catalog.register(queue, catalog.load(env))
                    sent = queue.send("greet", {{"name": ""}})
                    outcome = invoke.invoke("GreetWorker", ROOT / "events" / "schedule.json", overrides=env, timeout=60)
                    assert outcome.ok, outcome.output
                    job = queue.get_job(sent)
                    assert job is not None and job.state == "failed" and "non-empty" in str(job.output)
            ''',
        "Makefile": """\
            # `make dev` runs the project on this machine; `make test` runs its tests.
            SHELL := /bin/bash
            VENV ?= .venv
            PY := $(VENV)/bin/python

            .PHONY: install dev test template

            $(VENV)/.installed: pyproject.toml
            \tpython3 -m venv $(VENV)
            \t$(PY) -m pip install -q --upgrade pip
            \t$(PY) -m pip install -q -e '.[dev]'
            \ttouch $@

            install: $(VENV)/.installed

            dev: install
            \t$(VENV)/bin/jobs dev $(ARGS)

            test: install
            \t$(PY) -m pytest $(ARGS)

            template: install
            \t$(VENV)/bin/jobs template
            """,
        "layers/dependencies/requirements.txt": LAMBDA_REQUIREMENTS,
        "layers/app/Makefile": f"""\
            # Builds the layer of the project's own code (`sam build`, BuildMethod: makefile): the queue
            # and the runtime from the installed pgjobs, and this project's package. Lambda finds
            # them in /opt/python.
            ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
            PYTHON ?= $(firstword $(wildcard $(ROOT)/.venv/bin/python) python3)
            FIND = import jobqueue, runtime, os; print(*(os.path.dirname(m.__file__) for m in (jobqueue, runtime)))
            INSTALLED = $(shell $(PYTHON) -c '$(FIND)')

            build-AppLayer:
            \tmkdir -p "$(ARTIFACTS_DIR)/python"
            \tcp -R $(INSTALLED) "$(ROOT)/{package}" "$(ARTIFACTS_DIR)/python/"
            \tfind "$(ARTIFACTS_DIR)/python" -name __pycache__ -type d -prune -exec rm -rf {{}} +
            """,
        "samconfig.toml": f"""\
            # sam deploy settings: `sam deploy` uses [default]. Fill in the parameters for your account
            # (DbSecretArn, DashboardTokenSecretArn, SubnetIds, SecurityGroupIds), or `sam deploy --guided` once.
            version = 0.1

            [default.global.parameters]
            stack_name = "{name}"
            region = "eu-west-1"

            [default.build.parameters]
            # Not cached: the app layer's ContentUri (layers/app) holds only its Makefile.
            cached = false
            parallel = true

            [default.validate.parameters]
            lint = true

            [default.deploy.parameters]
            capabilities = "CAPABILITY_IAM"
            confirm_changeset = true
            resolve_s3 = true
            s3_prefix = "{name}"
            """,
        ".gitignore": ".venv/\n__pycache__/\n*.egg-info/\n.local/\n.aws-sam/\n",
        "README.md": _readme(name, package),
    }
    texts = {path: textwrap.dedent(text) for path, text in files.items()}
    for function in project.FUNCTIONS:
        texts[f"functions/{function}/app.py"] = project.entry_point(function)
    texts["events/schedule.json"] = _json(SCHEDULE_EVENT)
    texts["events/worker-kick.json"] = _json({"source": "kick", "queue": "greet"})
    texts["events/worker-scale-out.json"] = _json({"source": "scale-out", "queue": "greet"})
    texts["events/api-health.json"] = _json(_api_event("/api/jobs/health"))
    texts["events/api-stats.json"] = _json(_api_event("/api/jobs/stats"))
    return texts


def _readme(name: str, package: str) -> str:
    return f"""\
        # {name}

        Job types on a Postgres job queue ([pgjobs](https://pypi.org/project/pgjobs/)), run as AWS
        Lambda functions: one worker per job type, a scheduler for cron entries, maintenance, and an
        HTTP API with a dashboard.

        ## Run it

            make test     # the tests, against a throwaway Postgres (the server's binaries must be installed)
            make dev      # the whole system on this machine: Postgres, the functions, the API, the dashboard

        `make dev ARGS=--once` sends each job type's `example`, runs the workers until every job is
        done, and exits non-zero if one did not complete.

        ## Add a job type

        1. Write its handler in `{package}/handlers.py`: it takes a `jobqueue.Job` and returns the output.
        2. Declare it in `{package}/jobs.py`: a `JobType(name, handler, description, ...)` with its
           policy, settings, schedules, permissions and an `example`.
        3. Run `make template` (`jobs template`): template.yaml gets its worker function.

        ## Send jobs

        From Python, in your own transaction if you like:

            from jobqueue import Queue
            with Queue(DATABASE_URL) as queue:
                queue.send("greet", {{"name": "Ada"}})

        From an async app: `jobqueue.AsyncQueue`. From a shell: `jobs send greet --data '{{"name": "Ada"}}'`.

        ## Deploy

            sam build && sam deploy --guided

        The stack needs a Postgres it can reach (DbSecretArn: a Secrets Manager secret with its URL),
        the dashboard's token (DashboardTokenSecretArn) and the VPC's subnets and security group.
        `sam local invoke GreetWorker -e events/schedule.json` runs a function in Docker.
        """


def init(directory: Path, name: str | None = None, requirement: str | None = None) -> list[Path]:
    """Write a new project into `directory` (which must be empty or missing); returns the files written."""
    name = name or directory.resolve().name
    if not _NAME.match(name):
        raise ConfigurationError(
            f"{name!r} is not a project name: lowercase letters, digits and '-', 2 to 40 characters, "
            "starting with a letter (give one with --name)"
        )
    if directory.exists() and any(directory.iterdir()):
        raise ConfigurationError(f"{directory} is not empty: jobs init writes a new project only")
    written: list[Path] = []
    for relative, text in files(name, requirement or default_requirement()).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    # The catalog is the new package's: importable from the new folder until the project is installed.
    sys.path.insert(0, str(directory.resolve()))
    try:
        text = template.render(f"{_package(name)}.jobs")
    finally:
        sys.path.remove(str(directory.resolve()))
    (directory / "template.yaml").write_text(text)
    return [*written, directory / "template.yaml"]
