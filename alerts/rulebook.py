"""The effective rule set: the rule file (read-only, versioned with the deployment) plus rules created
over the API (stored in the database). A file rule and an API rule never share an id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.rules import DEFAULT_RULE_FILE, Rule, RuleError, explain, load_rule_file
from db.schema import RuleRow

Source = Literal["file", "api"]


class RuleRefused(Exception):
    """A write the rulebook refuses: `status` is the HTTP status, `errors` what is wrong."""

    def __init__(self, status: int, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = errors


@dataclass
class Rulebook:
    engine: Engine
    file: str | None  # None: the packaged defaults; "": no file
    file_rules: dict[str, Rule] = field(default_factory=dict)
    file_errors: list[RuleError] = field(default_factory=list)

    def load_file(self) -> None:
        path = DEFAULT_RULE_FILE if self.file is None else self.file
        if not path:
            self.file_rules, self.file_errors = {}, []
            return
        good, bad = load_rule_file(path)
        self.file_rules, self.file_errors = {r.id: r for r in good}, bad

    def api_rules(self) -> tuple[dict[str, Rule], list[RuleError]]:
        good: dict[str, Rule] = {}
        bad: list[RuleError] = []
        with Session(self.engine) as s:
            for row in s.scalars(select(RuleRow).order_by(RuleRow.id)):
                try:
                    good[row.id] = Rule.model_validate(row.doc)
                except ValidationError as exc:  # stored by an older version: reported, never fatal
                    bad.append(RuleError(where=f"database rule {row.id}", rule_id=row.id, errors=explain(exc)))
        return good, bad

    def snapshot(self) -> tuple[list[tuple[Rule, Source]], list[RuleError]]:
        """Every effective rule with its source, and every refused one (one database read)."""
        api, bad = self.api_rules()
        out: list[tuple[Rule, Source]] = [(r, "file") for r in self.file_rules.values()]
        out += [(r, "api") for rid, r in api.items() if rid not in self.file_rules]
        return sorted(out, key=lambda x: x[0].id), self.file_errors + bad

    def all(self) -> list[tuple[Rule, Source]]:
        return self.snapshot()[0]

    def get(self, rule_id: str) -> tuple[Rule, Source] | None:
        return next(((r, s) for r, s in self.all() if r.id == rule_id), None)

    @staticmethod
    def validate(doc: Any) -> Rule:
        if not isinstance(doc, dict):
            raise RuleRefused(422, ["rule: a rule is a JSON object"])
        try:
            return Rule.model_validate(doc)
        except ValidationError as exc:
            raise RuleRefused(422, explain(exc)) from exc

    def create(self, doc: Any, who: str | None) -> Rule:
        rule = self.validate(doc)
        if rule.id in self.file_rules:
            raise RuleRefused(409, [f"id: {rule.id!r} is defined in the rule file; edit the file instead"])
        now = datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            if s.get(RuleRow, rule.id) is not None:
                raise RuleRefused(409, [f"id: a rule {rule.id!r} exists; PUT /v1/rules/{rule.id} changes it"])
            s.add(RuleRow(id=rule.id, doc=rule.to_doc(), created_at=now, updated_at=now, updated_by=who))
        return rule

    def replace(self, rule_id: str, doc: Any, who: str | None) -> Rule:
        if isinstance(doc, dict):
            doc = {**doc, "id": doc.get("id", rule_id)}
        rule = self.validate(doc)
        if rule.id != rule_id:
            raise RuleRefused(422, [f"id: the body's id {rule.id!r} differs from the path's {rule_id!r}"])
        if rule_id in self.file_rules:
            raise RuleRefused(409, [f"id: {rule_id!r} is defined in the rule file; edit the file instead"])
        now = datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            row = s.get(RuleRow, rule_id)
            if row is None:
                raise RuleRefused(404, [f"no rule {rule_id!r}"])
            row.doc, row.updated_at, row.updated_by = rule.to_doc(), now, who
        return rule

    def delete(self, rule_id: str) -> None:
        if rule_id in self.file_rules:
            raise RuleRefused(409, [f"id: {rule_id!r} is defined in the rule file; remove it there"])
        with Session(self.engine) as s, s.begin():
            row = s.get(RuleRow, rule_id)
            if row is None:
                raise RuleRefused(404, [f"no rule {rule_id!r}"])
            s.delete(row)
