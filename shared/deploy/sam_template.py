"""Reading template.yaml the way the local stack needs it: functions, their
handler, code, timeout, environment and schedules (Globals merged).

CloudFormation's short-form tags (!Ref, !Sub, ...) are kept as
{"Ref": ...}-style dicts; `resolve` turns the ones that can be known locally
into strings (parameter defaults, the stack name "local") and drops the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy import project

LOCAL_STACK = "local"


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path | None = None) -> dict[str, Any]:
    """The template at `path`, by default the current project's (deploy.project)."""
    path = path or project.find().template
    document = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path} is not a CloudFormation template")
    return document


@dataclass
class Function:
    logical_id: str
    handler: str
    code_uri: Path
    timeout: int
    memory: int
    environment: dict[str, str]  # the values known locally (parameter defaults resolved)
    schedules: list[str] = field(default_factory=list)
    function_name: str = ""
    declared: tuple[str, ...] = ()  # every variable the template declares, known locally or not
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: at most this many at once


def _parameters(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec["Default"]) for name, spec in (template.get("Parameters") or {}).items() if "Default" in spec
    }


def resolve(value: Any, params: dict[str, str]) -> str | None:  # noqa: PLR0911 - one case per form
    """A template value as a local string, or None if it cannot be known here."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        ref = value["Ref"]
        if ref == "AWS::StackName":
            return LOCAL_STACK
        return params.get(ref)
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        if not isinstance(text, str):
            return None
        known = {
            "AWS::StackName": LOCAL_STACK,
            "AWS::Region": "local",
            "AWS::AccountId": "000000000000",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "localhost",
            **params,
        }
        missing = [n for n in re.findall(r"\$\{([^}!]+)\}", text) if n not in known]
        if missing:
            return None
        return re.sub(r"\$\{([^}!]+)\}", lambda m: known[m.group(1)], text)
    return None


def global_variables(template: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The variables Globals declares for every function."""
    template = template or load()
    globals_ = ((template.get("Globals") or {}).get("Function")) or {}
    return tuple(((globals_.get("Environment") or {}).get("Variables")) or {})


def functions(template: dict[str, Any] | None = None, root: Path | None = None) -> dict[str, Function]:
    """The template's functions; CodeUri is taken from `root` (default: the current project's folder)."""
    template = template or load()
    root = root or project.find().root
    params = _parameters(template)
    globals_ = ((template.get("Globals") or {}).get("Function")) or {}
    global_env = ((globals_.get("Environment") or {}).get("Variables")) or {}
    found: dict[str, Function] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        env_spec = {**global_env, **(((props.get("Environment") or {}).get("Variables")) or {})}
        environment = {k: v for k, v in ((k, resolve(v, params)) for k, v in env_spec.items()) if v is not None}
        schedules = [
            str(event["Properties"]["Schedule"])
            for event in (props.get("Events") or {}).values()
            if event.get("Type") == "Schedule"
        ]
        found[logical_id] = Function(
            logical_id=logical_id,
            handler=str(props.get("Handler") or globals_.get("Handler")),
            code_uri=root / str(props.get("CodeUri") or globals_.get("CodeUri")),
            timeout=int(resolve(props.get("Timeout", globals_.get("Timeout", 3)), params) or 3),
            memory=int(resolve(props.get("MemorySize", globals_.get("MemorySize", 128)), params) or 128),
            environment=environment,
            schedules=schedules,
            function_name=resolve(props.get("FunctionName"), params) or logical_id,
            declared=tuple(env_spec),
            reserved_concurrency=_reserved(props, params),
        )
    return found


def _reserved(props: dict[str, Any], params: dict[str, Any]) -> int | None:
    value = resolve(props.get("ReservedConcurrentExecutions"), params)
    return int(value) if value not in (None, "") else None
