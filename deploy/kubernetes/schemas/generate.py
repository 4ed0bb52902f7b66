"""Regenerate the schemas of the custom resources in this folder (<group>_<version>_<kind>.json), which
tests/unit/test_kubernetes.py validates the KEDA objects and the ServiceMonitor against.

KEDA and prometheus-operator publish their CRDs (with their openAPIV3Schema) as release assets only,
which these machines cannot download; PyPI carries them as the pydantic models of
`cloudcoil.models.keda` and `cloudcoil.models.prometheus-operator` (Apache-2.0), generated from the
projects' own CRD files (`keda-<version>-crds.yaml`, prometheus-operator's `bundle.yaml`: their
pyproject names them). This script turns those models back into JSON Schema, the way the API server
reads a structural CRD schema: no field is nullable, and no field the schema does not name is
accepted (as `kubectl apply --validate=strict` and kubernetes-validate --strict do).

    python -m venv /tmp/crds && /tmp/crds/bin/pip install cloudcoil.models.keda==2.16.1.0 \
        cloudcoil.models.prometheus-operator==0.80.1.0
    /tmp/crds/bin/python deploy/kubernetes/schemas/generate.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cloudcoil.models.keda.v1alpha1 as keda  # type: ignore[import-not-found]
import cloudcoil.models.prometheus_operator.v1 as monitoring  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
# (apiVersion, kind): (model, the PyPI package, the project whose CRD it is)
KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): (keda.ScaledObject, "cloudcoil.models.keda", "KEDA"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): (keda.TriggerAuthentication, "cloudcoil.models.keda", "KEDA"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (monitoring.ServiceMonitor, "cloudcoil.models.prometheus-operator",
                                                     "prometheus-operator"),
}


def structural(node: Any) -> Any:
    """Drop pydantic's nullability, titles and null defaults; close every object that lists properties."""
    if isinstance(node, list):
        return [structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: structural(v) for k, v in node.items() if k != "title" and not (k == "default" and v is None)}
    if "anyOf" in out:
        options = [o for o in out["anyOf"] if o != {"type": "null"}]
        if len(options) == 1:
            out.pop("anyOf")
            out = {**options[0], **out}
        else:
            out["anyOf"] = options
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main() -> None:
    for (api_version, kind), (model, package, project) in KINDS.items():
        release = version(package)
        schema = structural(model.model_json_schema(by_alias=True))
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"{api_version} {kind} of {project} {release.rsplit('.', 1)[0]} (Apache-2.0), from the "
                        f"pydantic models of {package} {release} (Apache-2.0), which are generated from "
                        f"{project}'s CRDs; made structural and strict by generate.py in this folder",
            **schema,
        }
        group, _, ver = api_version.partition("/")
        path = HERE / f"{group}_{ver}_{kind.lower()}.json"
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
