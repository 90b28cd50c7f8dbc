"""The conda environments in envs/, checked offline (conda cannot be installed where the tests run):
every rule names an existing environment that holds what its command imports, and every package is
pinned to a version that pyproject.toml allows."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import re
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from deepnuclei.cli import build_parser
from helpers import ROOT
from helpers.api import rules, workflow_api

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ENVS = sorted((ROOT / "envs").glob("*.yaml"))
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}  # where conda-forge's name differs
UNPINNED = {"pip"}  # the installer itself, not a dependency


def pins(env: Path) -> dict[str, str]:
    """Package (PyPI name, canonical) -> pinned version ('' if none) of the conda and pip sections."""
    entries = []
    for dependency in yaml.safe_load(env.read_text())["dependencies"]:
        entries += dependency["pip"] if isinstance(dependency, dict) else [dependency]
    packages = {}
    for entry in entries:
        name, _, version = entry.partition("==")
        packages[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = version
    return packages


@cache
def pyproject_ranges() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = {canonicalize_name(requirement.name): requirement.specifier
              for requirement in map(Requirement, project["dependencies"])}
    return {**ranges, "python": SpecifierSet(project["requires-python"])}


@pytest.mark.parametrize("env", ENVS, ids=[env.name for env in ENVS])
def test_every_package_is_pinned_within_pyprojects_range(env):
    problems = []
    for name, version in pins(env).items():
        if name in UNPINNED:
            continue
        if not version:
            problems.append(f"{name} is not pinned (name==version)")
        elif name not in pyproject_ranges():
            problems.append(f"{name} is not a dependency in pyproject.toml")
        elif version not in pyproject_ranges()[name]:
            problems.append(f"{name}=={version} is outside pyproject.toml's {pyproject_ranges()[name]}")
    assert not problems, f"{env.name}: " + "; ".join(problems)


@pytest.mark.parametrize("env", ENVS, ids=[env.name for env in ENVS])
def test_each_environment_installs_deepnuclei_without_dependencies(env):
    script = env.with_name(f"{env.stem}.post-deploy.sh")  # Snakemake runs it after creating the env
    assert "pip install --no-deps --editable" in script.read_text()


# ---- what each rule's command imports


def command_function(command: str):
    subcommands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return subcommands.choices[command].get_default("function")


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Absolute names of the modules a piece of code imports, anywhere in it (lazy imports included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import module`
    return names


def module_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # `from module import function` gives names that are not modules
        return None


def third_party_imports(command: str) -> set[str]:
    """Top-level names of the non-deepnuclei modules a CLI command reaches, following deepnuclei's
    modules (and their packages' __init__) transitively."""
    function = command_function(command)
    pending = imported_names(ast.parse(inspect.getsource(function).lstrip()), function.__module__.rpartition(".")[0])
    seen, outside = set(), set()
    while pending:
        name = pending.pop()
        if not name.startswith("deepnuclei"):
            outside.add(name.split(".")[0])
            continue
        spec = module_spec(name) if name not in seen else None
        seen.add(name)
        if spec is None or spec.origin is None:
            continue
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        pending |= imported_names(ast.parse(Path(spec.origin).read_text()), package) | {package}
    return outside


module_distributions = cache(packages_distributions)  # top-level module -> distributions; slow to build


@cache
def required_distributions(command: str) -> set[str]:
    """pyproject.toml dependencies (canonical names) whose modules the command imports."""
    distributions = module_distributions()
    return {canonicalize_name(distribution) for module in third_party_imports(command)
            for distribution in distributions.get(module, [])} & set(pyproject_ranges())


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory):
    with workflow_api(tmp_path_factory.mktemp("rules")) as api:
        return [rule for rule in rules(api) if rule.shellcmd]


def test_every_rule_runs_in_an_environment_holding_what_its_command_imports(workflow_rules):
    problems = []
    for rule in workflow_rules:
        if not rule.conda_env:
            problems.append(f"{rule.name}: no conda directive")
            continue
        env = (Path(rule.snakefile).parent / rule.conda_env).resolve()
        if not env.exists():
            problems.append(f"{rule.name}: {rule.conda_env} does not exist")
            continue
        command = re.search(r"deepnuclei ([a-z0-9-]+)", rule.shellcmd).group(1)
        missing = required_distributions(command) - set(pins(env))
        if missing:
            problems.append(f"{rule.name} (deepnuclei {command}) needs {sorted(missing)}, not in {env.name}")
    assert not problems, "\n".join(problems)
