"""KPI targets per scope (kpis.md "Targets"): the targets file (read-only) plus targets set over the API.

    targets:                                            # SQM_KPI_TARGETS_FILE
      - {kpi: csat, scope: "tier:vip", target: 0.90}
      - {kpi: service_level, scope: "queue:*", target: 0.80}   # every queue without its own target
      - {kpi: first_response_mean_s, scope: all, target: 3600}

A target for `kind:*` is the default of every scope of that kind; a scope's own target wins. File
targets cannot be changed over the API (409), as provisioned rules and dashboards in Grafana.
Reads go to an in-memory snapshot (`Targets`, api/kpi_targets.py), refreshed after every write and
every 30 s by the API, so that no request reads the database on the event loop.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.kpi_targets import KpiTarget, Source, TargetFile, Targets, staffing_config
from db.schema import TargetRow
from stream.clock import utcnow

__all__ = ["KpiTarget", "Source", "TargetBook", "TargetFile", "TargetRefused", "Targets", "load_targets",
           "staffing_config"]

DEFAULT_TARGETS_FILE = Path(__file__).with_name("default_targets.yaml")


def load_targets(path: str | None) -> dict[tuple[str, str], float]:
    """(scope, kpi) -> target of the targets file: None means the packaged defaults
    (api/default_targets.yaml), an empty path none; a bad file is an error."""
    if path is None:
        path = str(DEFAULT_TARGETS_FILE)
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {(t.scope, t.kpi): t.target for t in TargetFile.model_validate(data).targets}


class TargetRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class TargetBook:
    """Targets set over the API, in the database; `snapshot()` reads them all."""

    def __init__(self, engine: Engine, file: dict[tuple[str, str], float]) -> None:
        self.engine = engine
        self.file = file

    def snapshot(self) -> Targets:
        with Session(self.engine) as s:
            api = {(r.scope, r.kpi): r.target for r in s.scalars(select(TargetRow))}
        return Targets(dict(self.file), api)

    def put(self, t: KpiTarget, who: str | None) -> None:
        if (t.scope, t.kpi) in self.file:
            raise TargetRefused(409, f"{t.kpi} of {t.scope} is set in the targets file; change it there")
        with Session(self.engine) as s, s.begin():
            row = s.get(TargetRow, (t.scope, t.kpi))
            if row is None:
                s.add(TargetRow(scope=t.scope, kpi=t.kpi, target=t.target, updated_at=utcnow(), updated_by=who))
            else:
                row.target, row.updated_at, row.updated_by = t.target, utcnow(), who

    def delete(self, scope: str, kpi: str) -> None:
        if (scope, kpi) in self.file:
            raise TargetRefused(409, f"{kpi} of {scope} is set in the targets file; remove it there")
        with Session(self.engine) as s, s.begin():
            row = s.get(TargetRow, (scope, kpi))
            if row is None:
                raise TargetRefused(404, f"no target for {kpi} of {scope}")
            s.delete(row)
