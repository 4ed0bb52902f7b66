"""Imports point one way (docs/design.md, "Layout"): a test that reads every module's imports.

    stream/   imports nothing of ours but stream/: events, KPI math, windows, state (pure)
    edge/     stream/ only: the Kafka adapters (client settings, state writer, topic reader, Faust app)
    db/       the database schema and migrations: stream/ at most
    alerts/   stream/ and db/
    history/  stream/ and db/ (the KPI history)
    api/      stream/, db/, alerts/, history/ (and services.config: the settings are its input)
    services/ wires everything
The pure modules import no I/O library; the bench imports nothing from tests/; test helpers live in
tests/support/ and no test imports another test module or a conftest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"stream": {"edge", "db", "alerts", "history", "api", "services"},
             "edge": {"db", "alerts", "history", "api", "services"}, "db": {"alerts", "history", "api", "services"},
             "alerts": {"history", "api", "services"}, "history": {"alerts", "api", "services"},
             "api": {"services"}}
ALLOWED = {"api": frozenset({"services.config"})}
PURE = ["stream/events.py", "stream/dedupe.py", "stream/caps.py", "stream/folds.py", "stream/windows.py",
        "stream/scopes.py", "stream/kpis.py",
        "stream/tickets.py", "stream/state.py", "stream/records.py", "stream/view.py", "stream/sketch.py",
        "stream/clock.py", "stream/calls.py", "alerts/rules.py", "alerts/engine.py", "alerts/evaluator.py",
        "alerts/routing.py", "alerts/templates.py", "api/rankings.py", "api/sessions.py", "api/board/model.py",
        "api/board/i18n.py", "api/alert_views.py", "api/kpi_targets.py", "stream/voice.py", "stream/erlang.py",
        "stream/agents.py", "history/series.py"]
IO_LIBRARIES = {"faust", "mode", "fastapi", "starlette", "aiokafka", "kafka", "sqlalchemy", "httpx", "psycopg",
                "uvicorn", "asyncio", "socket", "subprocess"}


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(path: Path, forbidden: set[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    """Imports of `path` from a forbidden package; an allowed module covers its own names, and the
    bare package import that `from package import module` implies."""
    def ok(m: str) -> bool:
        return any(m == a or m.startswith(a + ".") or a.startswith(m + ".") for a in allowed)
    return sorted(m for m in imports(path) if m.split(".")[0] in forbidden and not ok(m))


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_packages_import_inward_only(package: str) -> None:
    bad = {str(p.relative_to(ROOT)): v for p in modules(package)
           if (v := violations(p, FORBIDDEN[package], ALLOWED.get(package, frozenset())))}
    assert not bad, f"{package}/ must not import these (wire in services/ instead): {bad}"


OURS = {"stream", "edge", "api", "alerts", "history", "db", "services"}


def file_of(module: str) -> Path | None:
    """The source file of one of our modules (None for a name inside a module, or a library)."""
    if module.split(".")[0] not in OURS:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reached(path: Path) -> dict[Path, Path]:
    """Every module of ours that `path` imports, directly or through others: module -> who imports it."""
    seen: dict[Path, Path] = {}
    todo = [path]
    while todo:
        here = todo.pop()
        for m in imports(here):
            f = file_of(m)
            if f is not None and f != path and f not in seen:
                seen[f] = here
                todo.append(f)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    """No I/O library, neither imported by the module nor by any module of ours it reaches (a pure
    module must not get to SQLAlchemy through api/targets.py)."""
    path = ROOT / module
    bad = violations(path, IO_LIBRARIES)
    assert not bad, f"{module} is pure (no I/O, no clock); it imports {bad}"
    through = {str(f.relative_to(ROOT)): (str(by.relative_to(ROOT)), v) for f, by in reached(path).items()
               if (v := violations(f, IO_LIBRARIES))}
    assert not through, f"{module} is pure, but reaches I/O through (module: (imported by, its I/O)): {through}"


def test_bench_imports_nothing_from_tests() -> None:
    bad = {str(p.relative_to(ROOT)): v for p in modules("bench") if (v := violations(p, {"tests"}))}
    assert not bad, bad


def test_tests_share_helpers_only_through_tests_support() -> None:
    bad = {}
    for p in modules("tests"):
        found = {m for m in imports(p) if m.split(".")[0] == "tests" and not m.startswith("tests.support")
                 and m != "tests"}
        found |= {m for m in imports(p) if m.split(".")[-1] == "conftest"}
        if found:
            bad[str(p.relative_to(ROOT))] = sorted(found)
    assert not bad, f"import shared helpers from tests/support/, not from test modules or conftest: {bad}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    probe = ROOT / "stream" / "_probe_for_test.py"
    probe.write_text("from alerts.rules import Rule\nfrom . import folds\n")
    try:
        assert violations(probe, FORBIDDEN["stream"]) == ["alerts.rules", "alerts.rules.Rule"]
        assert "stream.folds" in imports(probe)
        assert ROOT / "alerts" / "rules.py" in reached(probe) and ROOT / "stream" / "folds.py" in reached(probe)
    finally:
        probe.unlink()


def test_stream_holds_no_io_but_the_batch_steps_retry_loop() -> None:
    """The Kafka adapters live in edge/; of stream/ only processor.py (the batch step, which awaits its
    StateSink port and sleeps between retries) imports asyncio."""
    bad = {str(p.relative_to(ROOT)): v for p in modules("stream")
           if (v := violations(p, IO_LIBRARIES - ({"asyncio"} if p.name == "processor.py" else set())))}
    assert not bad, f"stream/ is pure: {bad}"
