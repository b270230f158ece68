"""What installing the package asks of a user's environment: ranges, never exact pins (an exact torch pin would
replace a GPU image's CUDA build), while CI, Docker and README command 1 install requirements.txt's exact pins,
which the ranges admit; and the linter of CI and of the pre-commit hook is one release."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = {"torch", "transformers", "accelerate", "datasets", "evaluate", "safetensors", "deepspeed"}


def installed_requirements() -> list[Requirement]:
    return [Requirement(line) for line in requires("hncse")]


def pinned(path: Path) -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return {Requirement(line).name: Requirement(line) for line in lines if line and not line.startswith("-")}


def test_the_package_metadata_declares_ranges_not_pins():
    found = installed_requirements()
    assert {r.name for r in found} >= FRAMEWORKS | {"scipy", "pyyaml", "filelock"}
    for requirement in found:
        operators = {spec.operator for spec in requirement.specifier}
        assert not operators & {"==", "==="}, f"{requirement}: an exact pin in the package metadata"
        assert ">=" in operators, f"{requirement}: no tested floor"
        if requirement.name in FRAMEWORKS:
            assert "<" in operators, f"{requirement}: no cap below the next major release"


def test_the_exact_pins_of_ci_and_docker_lie_in_the_ranges():
    ranges = {r.name: r for r in installed_requirements() if r.marker is None}
    pins = pinned(REPO / "requirements.txt")
    for name, requirement in ranges.items():
        pin = pins[name]
        if "==" in {spec.operator for spec in pin.specifier}:
            version = Version(next(iter(pin.specifier)).version)
            assert requirement.specifier.contains(version), f"requirements.txt {pin} is outside {requirement}"
    assert {name for name, pin in pins.items() if "==" in str(pin.specifier)} >= FRAMEWORKS
    assert "pip install --no-cache-dir -r requirements.txt" in (REPO / "Dockerfile").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command_1 = next(line for line in readme.splitlines() if "run_hncse.py configs/quickstart.yaml" in line)
    assert "-r requirements.txt" in command_1


def test_ci_and_the_pre_commit_hook_run_the_same_ruff():
    pin = pinned(REPO / "requirements-dev.txt")["ruff"]
    hooks = (REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert set(re.findall(r'"ruff==([0-9.]+)"', hooks)) == {next(iter(pin.specifier)).version}
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("ruff check .") < ci.index("ruff format --check .") < ci.index("pytest tests")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command_2 = next(line for line in readme.splitlines() if "-r requirements-dev.txt" in line and "pytest" in line)
    tests = command_2[command_2.index("python -m pytest") :]
    assert f".venv/bin/{tests}\n" in ci  # CI runs README command 2's tests as written
