"""The local stack: a project's whole system on one machine, no AWS account, no Docker.

Postgres (embedded, data kept in a directory), moto's server for AWS's APIs (S3, SES,
Secrets Manager...), the platform's own stand-ins (local.platform: for pods, three host
agents and a GitHub on loopback), the API in a process of its own, and an EventBridge
simulator that reads template.yaml and runs each function on its schedule, `speed` times
faster than real time. Kicks and scale-out requests from the functions start the named
worker at the simulator's next step, as Lambda would start it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moto.server import ThreadedMotoServer

from deploy import project, sam_template
from jobqueue import Queue, QueueSettings
from local import invoke
from local.embedded_postgres import EmbeddedPostgres, free_port
from local.lambda_service import RETRY_DELAYS_S, LambdaService, log_to_files
from local.platform import LocalPlatform
from local.platform import load as load_platform
from local.runtime_api import FunctionConfig, Outcome
from local.stack_settings import StackSettings
from runtime import catalog

REGION = "eu-west-1"
# Retries wait seconds, not minutes, so that the demo visibly recovers from faults.
LOCAL_RETRY: QueueSettings = {"retry_delay": 2, "retry_backoff": False}


def rate_seconds(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    if not match:
        raise ValueError(f"the simulator understands rate(N minutes|hours), not {expression!r}")
    return int(match.group(1)) * (3600 if match.group(2).startswith("hour") else 60)


@dataclass
class ScheduledFunction:
    """A function of template.yaml, as the simulator ticks it."""

    spec: sam_template.Function
    period_s: float | None  # real seconds between its EventBridge ticks (None: not scheduled)
    next_run: float = 0.0


@dataclass
class LocalStack:
    data_dir: Path
    speed: float = 60.0
    api_port: int = 0
    quiet: bool = True
    env: dict[str, str] = field(default_factory=dict)
    platform: LocalPlatform | None = None  # default: the project's [tool.pgjobs] local
    functions: dict[str, ScheduledFunction] = field(default_factory=dict)
    started_at: float = 0.0
    sim_start: datetime = field(default_factory=lambda: datetime.now(UTC))
    lambda_service: LambdaService | None = None
    on_error: Callable[[str, str], None] | None = None
    function_log: Callable[[str, str], None] | None = None  # (function, line); default: <data dir>/logs/

    def start(self, settings: StackSettings | None = None) -> None:
        """Start everything; `settings` fixes the ports and the token (random ones otherwise)."""
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres", port=settings.postgres_port if settings else 0)
        self.postgres.start()
        self.postgres.create_database("jobs")
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
        self.moto.start()
        if settings:
            self.api_port = settings.api_port
        api_token = (
            (settings.api_token if settings else None) or os.environ.get("API_TOKEN") or secrets.token_urlsafe(24)
        )
        found = project.find()
        if self.platform is None:
            self.platform = load_platform(found.local)
        self.env = {
            catalog.VARIABLE: found.platform,
            "DATABASE_URL": self.postgres.url("jobs"),
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "API_TOKEN": api_token,
            # Every function's cold start registers the queues: each must lay the local retries over.
            catalog.OVERRIDES_VARIABLE: json.dumps(LOCAL_RETRY),
            "POWERTOOLS_METRICS_NAMESPACE": "JobsLocal",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING" if self.quiet else "INFO",
            # Quiet or not, the functions write their metrics (EMF) as on Lambda: make dev sends
            # their output to its log file.
            "POWERTOOLS_METRICS_DISABLED": "false",
        }
        os.environ.update(self.env)  # the platform's stand-ins use AWS's APIs through moto too
        self.env |= self.platform.start(self)
        os.environ.update(self.env)
        if self.quiet:
            # The functions' loggers exist already (imported above): quiet them here.
            from runtime.observability import logger

            logger.setLevel("WARNING")
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        with Queue(self.env["DATABASE_URL"]) as queue:
            queue.migrate()
            catalog.register(queue)  # with LOCAL_RETRY laid over (JOBS_QUEUE_OVERRIDES, as every cold start)
            self.platform.ready(self, queue)
        self._start_lambda()
        self._start_api()
        self.started_at = time.monotonic()

    def _start_lambda(self) -> None:
        """The Lambda service with every function but the API (served by local.api_server, as API
        Gateway would), each in execution environments of its own, as Lambda runs them."""
        # The functions' own boto3 (a worker's kick and scale-out) reaches this service, as in AWS.
        invoke_port = free_port()
        self.env["AWS_ENDPOINT_URL_LAMBDA"] = f"http://127.0.0.1:{invoke_port}"
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.env["AWS_ENDPOINT_URL_LAMBDA"]
        configs: dict[str, FunctionConfig] = {}
        reserved: dict[str, int | None] = {}
        for logical_id, spec in sam_template.functions().items():
            if logical_id == "Api":
                continue
            configs[spec.function_name] = FunctionConfig(
                spec.function_name,
                spec.handler,
                spec.code_uri,
                spec.timeout,
                spec.memory,
                invoke.environment(spec, self.env),
                REGION,
            )
            reserved[spec.function_name] = spec.reserved_concurrency
            period = rate_seconds(spec.schedules[0]) / self.speed if spec.schedules else None
            self.functions[spec.function_name] = ScheduledFunction(spec, period)
        log = self.function_log or log_to_files(self.data_dir / "logs")
        self.lambda_service = LambdaService(
            configs,
            reserved=reserved,
            log=log,
            on_outcome=self._outcome,
            extra_path=(str(project.find().root),),
            retry_delays_s=tuple(delay / self.speed for delay in RETRY_DELAYS_S),  # in simulated time
        )
        self.lambda_service.serve(invoke_port)

    def _outcome(self, name: str, outcome: Outcome) -> None:
        if not outcome.ok and self.on_error is not None:
            payload = outcome.payload if isinstance(outcome.payload, dict) else {}
            self.on_error(name, f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', outcome.payload)}")

    def _start_api(self) -> None:
        self.api_port = self.api_port or free_port()
        env = {**os.environ, **self.env, "WORKER_FUNCTIONS": ""}
        self.api_process = subprocess.Popen(
            [sys.executable, "-m", "local.api_server", "--port", str(self.api_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto._port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/jobs"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/dashboard"

    def simulated_now(self) -> datetime:
        return self.sim_start + timedelta(seconds=(time.monotonic() - self.started_at) * self.speed)

    def run(self, function: ScheduledFunction, source: str = "aws.events") -> None:
        """An EventBridge tick of the function: an asynchronous invoke, as EventBridge makes it."""
        assert self.lambda_service is not None
        event = {"source": source, "time": self.simulated_now().strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.lambda_service.invoke_async(function.spec.function_name, json.dumps(event).encode())

    def step(self) -> int:
        """Tick every function that is due; returns how many. Kicks and scale-outs reach the Lambda
        service from the functions themselves, as they do in AWS."""
        now = time.monotonic()
        ran = 0
        for function in self.functions.values():
            if function.period_s is not None and now >= function.next_run:
                function.next_run = now + function.period_s
                self.run(function)
                ran += 1
        if self.lambda_service is not None:
            self.lambda_service.reap()
        return ran

    def settle(self, within_s: float = 60.0) -> bool:
        """Wait until every invocation started so far (and those they started) has ended."""
        return self.lambda_service is None or self.lambda_service.wait_idle(within_s)

    def invocations(self) -> int:
        if self.lambda_service is None:
            return 0
        return sum(f.stats.invocations for f in self.lambda_service.functions.values())

    def stop(self) -> None:
        if self.lambda_service is not None:
            self.lambda_service.stop()
        if getattr(self, "api_process", None) is not None:
            self.api_process.terminate()
            try:
                self.api_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.api_process.kill()
        if self.platform is not None:
            self.platform.stop()
        from runtime import bootstrap

        bootstrap.reset()
        if getattr(self, "moto", None) is not None:
            self.moto.stop()
        if getattr(self, "postgres", None) is not None:
            self.postgres.stop()
