"""Notification targets, routes, escalation and silence matching (docs/api.md "Delivery"). Pure.

A notify file (SQM_NOTIFY_FILE) names the targets and routes alerts to them, Alertmanager-style:

    targets:
      - {name: oncall-hook, type: webhook, url: "https://hooks.example/sqm"}
      - {name: am, type: alertmanager, url: "http://alertmanager:9093"}
      - {name: chat, type: slack, url: "https://hooks.slack.com/services/T/B/X"}
      - {name: leads-mail, type: email, smtp_host: mail, smtp_port: 25, from: sqm@example.com,
         to: [leads@example.com]}
      - {name: file, type: log, path: var/alerts.log}
      - {name: cn-leads, type: slack, url: "https://chat.example/hooks/x", language: zh-CN}  # Chinese texts
    routes:                       # first match wins, unless `continue: true`
      - match: {severity: critical, scope: "team:*"}
        targets: [oncall-hook, am]
        repeat_interval: 30m      # re-notify a still-firing alert this often
        escalation:               # critical and not acknowledged after `after`: next level
          - {after: 10m, targets: [leads-mail]}
          - {after: 30m, targets: [chat]}
      - match: {audience: team-lead}   # any label, severity, scope (glob), rule, kpi
        targets: [chat]
      - targets: [file]           # no match: everything

Without a notify file, every alert goes to a log target (var/alerts.log, one JSON line each).

E-mail targets choose their transport security with `smtp_tls`: `starttls` (upgrade on the plain
port, certificate and host name checked), `smtps` (TLS from the first byte, port 465 unless
`smtp_port` says otherwise) or `none` (the default; the older `smtp_starttls: true` means
`starttls`). `smtp_ca_file` (PEM) replaces the system's CAs for a relay with a private CA. A target
with `smtp_user` or `smtp_password` and no TLS is refused: the password would go out in clear.

Regular expressions (a route's `match_re`, a silence's `=~`/`!~`) come from operators and are run
against label values from ingested data, with Python's backtracking `re`. So a pattern is refused
(`regex_problem`) when it is longer than PATTERN_MAX characters, has a backreference, has a
quantifier or alternatives that may start alike inside a repeated group (`(a+)+`, `(a|ab)*`:
exponential time), or more than RUN_MAX overlapping quantifiers in a row with nothing between them
that they cannot match (`.*.*.*.*x`: polynomial time); a label value longer than SUBJECT_MAX
characters matches no regular expression. (`re2` would make this moot; it is not a dependency.)
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from alerts.rules import Duration
from stream.labels import lang_of

TargetType = Literal["webhook", "alertmanager", "slack", "email", "log"]
SmtpTls = Literal["starttls", "smtps", "none"]
SMTPS_PORT = 465
DEFAULT_REPEAT_S = 4 * 3600.0
ALERTMANAGER_RESEND_S = 60.0  # Alertmanager resolves an alert not re-sent before endsAt


class DeliveryTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    type: TargetType
    url: str | None = None
    headers: dict[str, str] = {}
    path: str | None = None  # log
    smtp_host: str | None = None
    smtp_port: int = Field(25, description="default 25, or 465 with smtp_tls: smtps")
    smtp_tls: SmtpTls | None = Field(None, description="starttls, smtps or none (default none, or starttls "
                                     "with the older smtp_starttls: true)")
    smtp_starttls: bool = Field(False, description="the older spelling of smtp_tls: starttls")
    smtp_ca_file: str | None = Field(None, description="PEM file of the CA(s) the relay's certificate is checked "
                                     "against, instead of the system's (a relay with a private CA)")
    smtp_user: str | None = None
    smtp_password: str | None = None
    from_addr: str | None = Field(None, alias="from")
    to: list[str] = []
    resend_s: Duration | None = Field(None, description="Alertmanager: re-send firing alerts this often")
    language: str | None = Field(None, description="the language of summaries and interventions sent here (en, "
                                 "zh-CN); default: each rule's own texts")

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is None:
            return None
        lang = lang_of(v)
        if lang is None:
            raise ValueError(f"language {v!r} is not supported (en, zh-CN)")
        return lang

    @model_validator(mode="before")
    @classmethod
    def _smtps_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("smtp_tls") == "smtps" and "smtp_port" not in data:
            return {**data, "smtp_port": SMTPS_PORT}
        return data

    @model_validator(mode="after")
    def _complete(self) -> DeliveryTarget:
        if self.type in ("webhook", "alertmanager", "slack") and not self.url:
            raise ValueError(f"target {self.name}: type {self.type} needs a url")
        if self.type == "email" and not (self.smtp_host and self.from_addr and self.to):
            raise ValueError(f"target {self.name}: type email needs smtp_host, from and to")
        if self.smtp_starttls and self.smtp_tls not in (None, "starttls"):
            raise ValueError(f"target {self.name}: smtp_starttls: true contradicts smtp_tls: {self.smtp_tls} "
                             "(drop smtp_starttls)")
        if (self.smtp_user or self.smtp_password) and self.tls == "none":
            raise ValueError(f"target {self.name}: smtp_user/smtp_password without TLS would send the password in "
                             "clear: set smtp_tls: starttls (or smtps, implicit TLS)")
        if self.smtp_ca_file and self.tls == "none":
            raise ValueError(f"target {self.name}: smtp_ca_file needs smtp_tls: starttls or smtps")
        if self.type == "log" and not self.path:
            raise ValueError(f"target {self.name}: type log needs a path")
        return self

    @property
    def tls(self) -> SmtpTls:
        """The e-mail transport's security: `smtp_tls`, else `starttls` for `smtp_starttls: true`."""
        return self.smtp_tls or ("starttls" if self.smtp_starttls else "none")

    @property
    def repeat_cap_s(self) -> float | None:
        """Alertmanager forgets an alert that is not re-sent: cap the repeat interval for it."""
        if self.type == "alertmanager":
            return self.resend_s or ALERTMANAGER_RESEND_S
        return None


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: Duration = Field(alias="after")
    targets: list[str]


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    targets: list[str] = []
    repeat_interval_s: Duration = Field(DEFAULT_REPEAT_S, alias="repeat_interval")
    escalation: list[Level] = []
    cont: bool = Field(False, alias="continue")

    @field_validator("match_re")
    @classmethod
    def _re(cls, v: dict[str, str]) -> dict[str, str]:
        for k, pat in v.items():
            if why := regex_problem(pat):
                raise ValueError(f"match_re.{k}: {why}")
        return v

    def matches(self, labels: dict[str, str]) -> bool:
        for k, want in self.match.items():
            if not fnmatch.fnmatchcase(labels.get(k, ""), want):
                return False
        return all(regex_fullmatch(pat, labels.get(k, "")) for k, pat in self.match_re.items())


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: list[DeliveryTarget] = []
    routes: list[Route] = []

    @model_validator(mode="after")
    def _known(self) -> NotifyConfig:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        for i, r in enumerate(self.routes):
            for n in [*r.targets, *(t for lv in r.escalation for t in lv.targets)]:
                if n not in names:
                    raise ValueError(f"routes[{i}]: unknown target {n!r}")
        return self

    def target(self, name: str) -> DeliveryTarget | None:
        return next((t for t in self.targets if t.name == name), None)

    def routes_for(self, labels: dict[str, str]) -> list[Route]:
        out = []
        for r in self.routes:
            if r.matches(labels):
                out.append(r)
                if not r.cont:
                    break
        return out


def default_config(log_path: str) -> NotifyConfig:
    return NotifyConfig(targets=[DeliveryTarget(name="log", type="log", path=log_path)],
                        routes=[Route(targets=["log"])])


def load_notify_file(path: str | None, default_log: str) -> NotifyConfig:
    if not path:
        return default_config(default_log)
    config = NotifyConfig.model_validate(yaml.safe_load(Path(path).read_text()) or {})
    for t in config.targets:  # a CA file that is not there fails at start, not at the first e-mail
        if t.smtp_ca_file:
            try:
                pem = Path(t.smtp_ca_file).read_text(errors="replace")
            except OSError as exc:
                raise ValueError(f"target {t.name}: smtp_ca_file {t.smtp_ca_file}: {exc.strerror or exc}") from exc
            if "-----BEGIN CERTIFICATE-----" not in pem:
                raise ValueError(f"target {t.name}: smtp_ca_file {t.smtp_ca_file} holds no PEM certificate")
    return config


def alert_labels(alert: dict[str, Any]) -> dict[str, str]:
    """The labels an alert is routed and silenced by: the rule's labels plus the engine's."""
    out = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    out.update({"alertname": str(alert["rule_id"]), "rule": str(alert["rule_id"]), "severity": str(
        alert.get("severity") or ""), "scope": str(alert["scope"]), "kpi": str(alert["kpi"]),
        "window": str(alert["window"])})
    return out


# -- regular expressions from operators, run on ingested values ------------------------------------
PATTERN_MAX = 256  # characters of a pattern
SUBJECT_MAX = 256  # characters of a label value a pattern is run on (a scope has at most 200)
RUN_MAX = 3  # overlapping quantifiers in a row: n^3 steps at most on SUBJECT_MAX characters (~10 ms)
_parser: Any = importlib.import_module("re._parser")  # the parser of `re` itself (no stub: typed Any)
_op: Any = importlib.import_module("re._constants")
_NON_ASCII = "<non-ascii>"  # stands for every character above U+007F in the sets below
_ANY = None  # the set of every character
_REPEATS = (_op.MAX_REPEAT, _op.MIN_REPEAT, _op.POSSESSIVE_REPEAT)
_ONE_CHAR = (_op.LITERAL, _op.NOT_LITERAL, _op.ANY, _op.IN)
_CATEGORIES = {_op.CATEGORY_DIGIT: "0123456789", _op.CATEGORY_SPACE: " \t\n\r\f\v\x1c\x1d\x1e\x1f",
               _op.CATEGORY_WORD: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"}
Chars = frozenset[str] | None  # the characters an item may consume, over-approximated; None: any


class UnsafeRegex(ValueError):
    pass


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` may not be run on ingested label values, or None when it may.

    >>> regex_problem("(a+)+$")
    'a quantifier inside a repeated group (as in (a+)+ or (x*y)*) can take exponential time'
    >>> regex_problem("team:(eu|us)-[a-z0-9]+") is None
    True
    """
    if len(pattern) > PATTERN_MAX:
        return f"longer than {PATTERN_MAX} characters"
    try:
        re.compile(pattern)
        tree = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"bad regular expression: {exc}"
    try:
        _walk(list(tree), [], repeated=False)
    except UnsafeRegex as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=8192)
def regex_fullmatch(pattern: str, value: str) -> bool:
    """`pattern` (checked by `regex_problem`) matches all of `value`; never for a value longer than
    SUBJECT_MAX. Cached: the notifier asks about the same alerts every second."""
    return len(value) <= SUBJECT_MAX and re.fullmatch(pattern, value) is not None


# the non-ASCII characters that match an ASCII letter under IGNORECASE (re._casefix)
_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def _lit(code: int) -> frozenset[str]:
    c = chr(code)
    if code > 0x7F:
        return frozenset({c, c.lower(), c.upper(), _NON_ASCII})
    return frozenset({c, c.lower(), c.upper(), *_FOLDS.get(c.lower(), "")})


def _set_chars(items: list[tuple[Any, Any]]) -> Chars:
    out: set[str] = set()
    for op, av in items:
        if op is _op.LITERAL:
            out |= _lit(av)
        elif op is _op.RANGE:
            for code in range(av[0], min(av[1], 0x7F) + 1):
                out |= _lit(code)
            if av[1] > 0x7F:
                out |= {_NON_ASCII, *(f for f in "".join(_FOLDS.values()) if av[0] <= ord(f) <= av[1])}
        elif op is _op.CATEGORY and av in _CATEGORIES:
            out |= {*_CATEGORIES[av], _NON_ASCII}
        else:  # NEGATE, \D, \S, \W ...
            return _ANY
    return frozenset(out)


def _chars(items: list[tuple[Any, Any]]) -> Chars:
    out: set[str] = set()
    for op, av in items:
        if op is _op.LITERAL:
            got: Chars = _lit(av)
        elif op is _op.IN:
            got = _set_chars(av)
        elif op in _REPEATS:
            got = _chars(av[2])
        elif op is _op.SUBPATTERN:
            got = _chars(av[3])
        elif op is _op.ATOMIC_GROUP:
            got = _chars(av)
        elif op is _op.BRANCH:
            got = _chars([item for b in av[1] for item in b])
        elif op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
            got = frozenset()  # zero width
        else:
            got = _ANY
        if got is None:
            return _ANY
        out |= got
    return frozenset(out)


def _overlap(a: Chars, b: Chars) -> bool:
    return a is None or b is None or bool(a & b)


def _mandatory(items: list[tuple[Any, Any]]) -> bool:
    """`items` consume at least one character whatever path is taken."""
    for op, av in items:
        if op in _ONE_CHAR or (op in _REPEATS and av[0] >= 1 and _mandatory(av[2])):
            return True
        if (op is _op.SUBPATTERN and _mandatory(av[3])) or (op is _op.ATOMIC_GROUP and _mandatory(av)):
            return True
        if op is _op.BRANCH and all(_mandatory(b) for b in av[1]):
            return True
    return False


def _first(items: list[tuple[Any, Any]]) -> Chars | Literal[False]:
    """The characters a sequence may start with, or False when it may match nothing."""
    for i, (op, av) in enumerate(items):
        if _mandatory([(op, av)]):
            return _chars(items[: i + 1])
    return False


def _ambiguous(branches: list[list[tuple[Any, Any]]]) -> bool:
    """Two branches may start alike (or one may be empty): a choice to take back on failure."""
    firsts = [_first(b) for b in branches]
    if any(f is False for f in firsts):
        return True
    sets = [f for f in firsts if f is not False]
    return any(_overlap(a, b) for i, a in enumerate(sets) for b in sets[i + 1:])


Run = list[tuple[Chars, int]]  # the open quantifiers: what each may consume, and its chain length


def _choice(run: Run, chars: Chars) -> Run:
    depth = 1 + max((d for c, d in run if _overlap(c, chars)), default=0)
    if depth > RUN_MAX:
        raise UnsafeRegex(f"more than {RUN_MAX} quantifiers in a row that may match the same characters "
                          "(as in .*.*.*.*x) can take polynomial time: put a character between them that they "
                          "cannot match")
    return [*run, (chars, depth)]


def _walk(items: list[tuple[Any, Any]], run: Run, *, repeated: bool) -> Run:
    """Check a sequence; `run` holds the quantifiers still open before it, the result those after it.
    `repeated`: inside a group repeated a variable number of times, where no choice is allowed."""
    nested = UnsafeRegex("a quantifier inside a repeated group (as in (a+)+ or (x*y)*) can take exponential time")
    for op, av in items:
        if op in (_op.GROUPREF, _op.GROUPREF_EXISTS):
            raise UnsafeRegex("backreferences ((...)\\1, (?P=name), (?(1)...)) are not allowed")
        if op in _REPEATS:
            lo, hi, body = av
            if lo == hi:  # {n}: the body n times
                for _ in range(min(hi, RUN_MAX + 1)):
                    run = _walk(body, run, repeated=repeated)
                continue
            if repeated:
                raise nested
            run = _choice(run, _chars(body))
            run = _walk(body, run, repeated=hi > 1)
        elif op in _ONE_CHAR:  # a character the open quantifiers cannot match ends them
            chars = _chars([(op, av)])
            run = [(c, d) for c, d in run if _overlap(c, chars)]
        elif op is _op.SUBPATTERN:
            run = _walk(av[3], run, repeated=repeated)
        elif op is _op.ATOMIC_GROUP:
            run = _walk(av, run, repeated=repeated)
        elif op is _op.BRANCH:
            if _ambiguous(av[1]):
                if repeated:
                    raise UnsafeRegex("alternatives that may start alike (or be empty) inside a repeated group (as in "
                                      "(a|ab)+) can take exponential time")
                run = _choice(run, _chars([item for b in av[1] for item in b]))
            run = max((_walk(b, run, repeated=repeated) for b in av[1]), key=len)
        elif op in (_op.ASSERT, _op.ASSERT_NOT):
            _walk(av[1], [], repeated=False)
    return run


# -- silences -------------------------------------------------------------------------------
class Matcher(BaseModel):
    """Alertmanager's matcher: `op` is =, !=, =~ (full-match regex) or !~.

    A regular expression `regex_problem` refuses is refused at validation; a matcher read back from
    the database (validated with context `{"stored": True}`) that has one, stored before the check
    existed, is kept but matches nothing, for =~ and !~ alike (its silence silences nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    value: str
    op: Literal["=", "!=", "=~", "!~"] = "="
    _refused: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _regex(self, info: ValidationInfo) -> Matcher:
        if self.op in ("=~", "!~") and (why := regex_problem(self.value)):
            if not (isinstance(info.context, dict) and info.context.get("stored")):
                raise ValueError(f"matcher {self.name}: regular expression refused: {why}")
            self._refused = why
        return self

    @property
    def refused(self) -> str | None:
        """Why this stored matcher's regular expression is not run (it matches nothing), or None."""
        return self._refused

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        if self._refused is not None or len(v) > SUBJECT_MAX:
            return False  # neither =~ nor !~: a silence that cannot be evaluated safely silences nothing
        hit = regex_fullmatch(self.value, v)
        return hit if self.op == "=~" else not hit


def silenced_by(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return bool(matchers) and all(m.matches(labels) for m in matchers)
