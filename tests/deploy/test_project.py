"""A project: found from its folder, its platform named in pyproject.toml; and what `jobs init` writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import project, skeleton
from jobqueue import ConfigurationError

ROOT = Path(__file__).parents[2]


def test_this_repository_is_the_pods_project_from_any_folder_inside_it() -> None:
    for start in (ROOT, ROOT / "platform" / "pods", ROOT / "tests" / "deploy"):
        found = project.find(start, env={})
        assert (found.root, found.platform, found.local) == (ROOT, "pods.jobs", "podslocal.stack:PODS")
    assert project.find(ROOT, env={"JOBS_PLATFORM": "other.jobs"}).platform == "other.jobs"


def test_a_project_is_found_above_the_working_folder_or_where_the_variable_says(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pgjobs]\nplatform = "mine.jobs"\n')
    (tmp_path / "deep" / "er").mkdir(parents=True)
    assert project.find(tmp_path / "deep" / "er", env={}).root == tmp_path.resolve()
    assert project.find(ROOT, env={"JOBS_PROJECT_ROOT": str(tmp_path)}).platform == "mine.jobs"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "has no pyproject.toml"),
        ("[tool.pgjobs\n", "is not valid TOML"),
        ('[project]\nname = "x"\n', "has no [tool.pgjobs] table"),
        ("[tool.pgjobs]\nplatform = 3\n", "platform must name the module"),
        ('[tool.pgjobs]\nplatform = "a.b"\nlocal = 1\n', "local must be a module[:attribute] string"),
    ],
)
def test_a_broken_project_says_what_is_wrong(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
        project.read(tmp_path, env={})


def test_the_functions_entry_points_are_the_ones_jobs_init_writes() -> None:
    for function in project.FUNCTIONS:
        assert (ROOT / "functions" / function / "app.py").read_text() == project.entry_point(function)
    with pytest.raises(ValueError, match="no function 'nope'"):
        project.entry_point("nope")


def test_the_dependencies_layer_is_the_one_jobs_init_writes() -> None:
    assert (ROOT / "layers" / "dependencies" / "requirements.txt").read_text() == skeleton.LAMBDA_REQUIREMENTS


@pytest.mark.parametrize(
    ("name", "message"),
    [("X", "is not a project name"), ("a b", "is not a project name"), ("json", "hides another module")],
)
def test_jobs_init_refuses_a_bad_name(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        skeleton.init(tmp_path / "p", name=name)
    assert not (tmp_path / "p").exists()


def test_jobs_init_never_writes_into_a_folder_that_has_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="is not empty"):
        skeleton.init(tmp_path, name="fine-name")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_requirement_takes_the_local_extra_in_both_forms() -> None:
    assert skeleton.with_extra("pgjobs==0.2.0", "local") == "pgjobs[local]==0.2.0"
    assert skeleton.with_extra("pgjobs @ file:///w.whl", "local") == "pgjobs[local] @ file:///w.whl"


@pytest.mark.slow
def test_a_new_projects_template_passes_cfn_lint_and_sam_validate(tmp_path: Path) -> None:
    """What `jobs init` writes is ready for `sam deploy`: the checks `make validate` runs here pass on it."""
    sam_bin = ROOT / ".venv-sam" / "bin"
    if not (sam_bin / "cfn-lint").exists():
        pytest.skip("no cfn-lint in .venv-sam (make validate installs it; .ci/run runs it first)")
    skeleton.init(tmp_path / "billing-jobs")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SAM_CLI_TELEMETRY": "0"}
    for command in (
        [str(sam_bin / "cfn-lint"), "template.yaml"],
        [str(sam_bin / "sam"), "validate", "--lint", "--region", "eu-west-1"],
    ):
        done = subprocess.run(
            command, cwd=tmp_path / "billing-jobs", env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
