"""The shipped dashboards and rule files against a real Prometheus scraping a running sqm with traffic.

Debian's `prometheus` runs the shipped prometheus.yml made local (the job `sqm` scrapes this test's API
every second; sqm-rules.yml and sqm-recording.yml are evaluated every second). sqm runs on the embedded
broker: a worker, the API (with per-agent series) and the notifier, whose alerts go to a webhook that
answers, one that is down and one that refuses, so that every delivery figure has data. Traffic comes
in two waves, the second after Prometheus has scraped the first, so that every counter rises under
Prometheus' eyes. Then:

- every rule of both files evaluates without error; at an evaluation on scrapes of the started stack
  (the worker's heartbeat in them, none failed), the health alerts this stack must raise (deliveries
  failing, a notification parked) are pending, and no other alert is pending or firing;
- every recorded series equals what the metrics contract says, computed here from the raw counters
  Prometheus stored, with Prometheus' own rate arithmetic: a real check of each value, not "non-empty";
- every PromQL expression of every shipped dashboard parses and returns data, with the template
  variables at "All" (Grafana's default) and at a real value taken from the data.

Grafana's built-in intervals: `$__rate_interval` is 1m, what Grafana gives with the datasource's default
15 s scrape interval (4 x 15 s) and so what production dashboards send; at this test's 1 s scrapes a 1m
window holds every sample the test has (two after 2 s, which is all a rate needs). `$__interval` is 5s
(five samples here). `$__range` is the time since Prometheus started, so a range covers the whole run.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy.grafana.sqm_dashboards.shipped import load, substitute, targets, variable_values
from services.broker import EmbeddedBroker, free_port
from services.loadgen import LIVE, agent_shift, lifecycles, random_stream, survey, ticket
from tests.support.peers import WebhookSink
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
TOKEN = "dashboards-token-0123456789"
RATE_INTERVAL, INTERVAL = "1m", "5s"


class Prometheus:
    """Debian's `prometheus` with the shipped prometheus.yml made local: only the `sqm` job, scraping
    `target`; the shipped rule files; everything every second; no Alertmanager."""

    def __init__(self, tmp: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: `make test` installs it (Debian package prometheus)"
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(DEPLOY / Path(f).name) for f in config["rule_files"]]
        del config["alerting"]
        config["scrape_configs"] = [{**job, "static_configs": [{"targets": [target]}]}
                                    for job in config["scrape_configs"] if job["job_name"] == "sqm"]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log = open(tmp / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.started = time.time()
        wait_for(lambda: self.client.get("/-/ready").status_code == 200, 30, "Prometheus ready")

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """The whole answer of /api/v1/query (status, data or error), whatever the HTTP status."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        return self.client.post("/api/v1/query", data=params).json()  # type: ignore[no-any-return]

    def result(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        answer = self.query(expr, at)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def get(self, path: str, **params: str) -> Any:
        r = self.client.get(path, params=params)
        r.raise_for_status()
        return r.json()["data"]

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# -- the traffic ----------------------------------------------------------------------------------
def notify_file(tmp: Path, hook: WebhookSink, api_url: str) -> Path:
    """Every alert to three webhooks: one that answers, one that is down (nothing listens on the port:
    retried, so notifications wait) and one that refuses (the API answers 404: parked at once)."""
    doc = {"targets": [{"name": "hook", "type": "webhook", "url": f"{hook.url}/hook"},
                       {"name": "down", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"},
                       {"name": "refusing", "type": "webhook", "url": f"{api_url}/no-such-hook"}],
           "routes": [{"targets": ["hook", "down", "refusing"]}]}
    path = tmp / "notify.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rules_file(tmp: Path) -> Path:
    """Rules that fire at once: a warning per team with tickets, a critical on all."""
    common = {"kpi": "tickets_created", "window": "24h", "op": ">", "for": "0s", "summary": "{scope}: {value}"}
    doc = {"rules": [{"id": "dash-team-volume", "scope": "team:*", "warning": 0, "critical": 1e9, **common},
                     {"id": "dash-volume", "scope": "all", "warning": 0, "critical": 1, **common}]}
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def first_wave(now: float) -> list[Any]:
    """Events over every window and live contacts, plus a message that breaks the contract, a
    duplicate and an event older than the longest window."""
    events: list[Any] = random_stream(1200, now, seed=41) + lifecycles(300, now, seed=41) + \
        agent_shift(300, now, agents=30, span_s=1800)  # agents of the teams and queues: occupancy, staffing
    return [*events, ("tickets", b"{not json"), events[0], ticket("ticket.created", now - 3 * 86400,
                                                                   now - 3 * 86400, "late-1", team="billing")]


def ingest_over_http(stack: Stack) -> None:
    now = time.time()
    body = [ticket("ticket.created", now, now, "http-1", team="billing"), survey(now, "http-s", csat=9)]
    r = httpx.post(stack.url + "/v1/events", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


def settle(stack: Stack, prom: Prometheus, evaluations: int = 0) -> None:
    """Wait until Prometheus holds the API's current counter values (and, with `evaluations`, until the
    rules have been evaluated on them that many times)."""
    final = stack.metrics().get("sqm_kpi_tickets_created_total{kind=all,scope=all}")
    assert final, "no sqm_kpi_tickets_created_total{scope=all} on /metrics"

    def stored() -> bool:
        found = prom.result('sqm_kpi_tickets_created_total{scope="all"}')
        return bool(found) and float(found[0]["value"][1]) == final

    wait_for(stored, 20, "Prometheus to scrape the final counters", stack)
    time.sleep(evaluations * 1.1)


# -- the contract's recording rules, computed from the raw counters -------------------------------
def prometheus_rate(points: list[tuple[int, float]], end_ms: int, range_s: int) -> float | None:
    """rate() of one counter as Prometheus 2 computes it (promql/functions.go, extrapolatedRate), from
    its samples (ms, value) in the window ending at `end_ms`: the increase from the first sample to the
    last, corrected for resets, extrapolated towards the window's edges, per second. Float operations
    in Prometheus' order, so that the result is the same number."""
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    last = 0.0
    for _, v in points:
        if v < last:
            result += last
        last = v
    to_start = (points[0][0] - (end_ms - range_s * 1000)) / 1000
    to_end = (end_ms - points[-1][0]) / 1000
    sampled = (points[-1][0] - points[0][0]) / 1000
    average = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        to_zero = sampled * (points[0][1] / result)
        if to_zero < to_start:
            to_start = to_zero
    threshold = average * 1.1
    extrapolate_to = sampled
    extrapolate_to += to_start if to_start < threshold else average / 2
    extrapolate_to += to_end if to_end < threshold else average / 2
    return result * (extrapolate_to / sampled) / range_s


#: recorded name -> (grouping labels, metric, window s) of every rate rule
RATES: dict[str, tuple[tuple[str, ...], str, int]] = {
    **{f"kind_scope:sqm_kpi_{c}:rate5m": (("kind", "scope"), f"sqm_kpi_{c}_total", 300) for c in (
        "tickets_created", "tickets_resolved", "first_responses", "first_responses_within_target", "calls_offered",
        "calls_answered", "calls_answered_within_threshold", "calls_abandoned_after_cutoff", "csat_responses",
        "csat_satisfied_responses", "nps_responses", "nps_promoters", "nps_detractors")},
    "type:sqm_events:rate5m": (("type",), "sqm_events_total", 300),
}
#: recorded name -> (scale, numerator terms, denominator terms) over 1 h; a term "-x" is subtracted.
#: The formulas of docs/kpis.md, written here again from the contract, not read from the rule file.
RATIOS: dict[str, tuple[float, list[str], list[str]]] = {
    "first_response_sla:ratio_rate1h": (1, ["first_responses_within_target"], ["first_responses"]),
    "first_response_mean:seconds_rate1h": (1, ["first_response_seconds"], ["first_responses"]),
    "service_level:ratio_rate1h": (1, ["calls_answered_within_threshold"],
                                   ["calls_answered", "calls_abandoned_after_cutoff"]),
    "abandonment:ratio_rate1h": (1, ["calls_abandoned_after_cutoff"],
                                 ["calls_answered", "calls_abandoned_after_cutoff"]),
    "asa:seconds_rate1h": (1, ["answer_wait_seconds"], ["calls_answered"]),
    "first_contact_resolution:ratio_rate1h": (1, ["tickets_resolved_one_contact", "calls_ended_resolved"],
                                              ["tickets_resolved", "calls_ended"]),
    "csat:ratio_rate1h": (1, ["csat_satisfied_responses"], ["csat_responses"]),
    "nps:score_rate1h": (100, ["nps_promoters", "-nps_detractors"], ["nps_responses"]),
    "aht:seconds_rate1h": (1, ["handle_seconds"], ["calls_ended"]),
    "ces:score_rate1h": (1, ["ces_score_points"], ["ces_responses"]),
    "reopen:ratio_rate1h": (1, ["tickets_reopened"], ["tickets_resolved"]),
    "complaint:ratio_rate1h": (1, ["complaints_created"], ["tickets_created"]),
}

Rates = dict[tuple[str, ...], float]  # group (label values) -> rate


def raw_rates(prom: Prometheus, metric: str, by: tuple[str, ...], end_ms: int, range_s: int,
              drop_newest: bool) -> Rates:
    """max by (`by`) of the rate of each series of `metric`, from its raw samples at `end_ms`. With
    `drop_newest`, a sample less than 1.5 s old is left out: a scrape under way when the rule was
    evaluated was stored after the rule read the data."""
    out: Rates = {}
    for series in prom.result(f"{metric}[{range_s}s]", end_ms / 1000):
        points = [(round(float(t) * 1000), float(v)) for t, v in series["values"]]
        if drop_newest and points and points[-1][0] > end_ms - 1500:
            points = points[:-1]
        rate = prometheus_rate(points, end_ms, range_s)
        if rate is not None:
            key = tuple(series["metric"].get(label, "") for label in by)
            out[key] = max(out.get(key, rate), rate)
    return out


def combine(terms: list[str], rates: Mapping[str, Rates], key: tuple[str, ...]) -> float | None:
    """The sum of the terms a group has ((a + b) or a or b), in the rule's order."""
    acc: float | None = None
    for term in terms:
        value = rates[term.lstrip("-")].get(key)
        if value is None:
            continue
        negative = term.startswith("-")
        acc = (-value if negative else value) if acc is None else (acc - value if negative else acc + value)
    return acc


def expected_ratios(scale: float, num: list[str], den: list[str], rates: Mapping[str, Rates]) -> Rates:
    out: Rates = {}
    for key in {k for terms in (num, den) for t in terms for k in rates[t.lstrip("-")]}:
        n, d = combine(num, rates, key), combine(den, rates, key)
        if n is not None and d is not None and d > 0:
            out[key] = (scale * n if scale != 1 else n) / d
    return out


def recorded(prom: Prometheus, name: str, by: tuple[str, ...]) -> tuple[int, Rates]:
    """The newest evaluation of a recording rule: its time (ms) and its values by group."""
    series = prom.result(f"{name}[10s]")
    assert series, f"{name} has recorded nothing"
    end_ms = max(round(float(s["values"][-1][0]) * 1000) for s in series)
    return end_ms, {tuple(s["metric"].get(label, "") for label in by): float(s["values"][-1][1])
                    for s in series if round(float(s["values"][-1][0]) * 1000) == end_ms}


def check_recording_rules(prom: Prometheus) -> int:
    """Every recording rule's newest values against the contract's formulas over the raw counters;
    returns how many values were compared."""
    names = [r["record"] for g in yaml.safe_load((DEPLOY / "sqm-recording.yml").read_text())["groups"]
             for r in g["rules"]]
    unknown = [n for n in names if n not in RATES and n.removeprefix("kind_scope:sqm_kpi_") not in RATIOS]
    assert not unknown, f"this test does not know the formula of {unknown}: add it to RATES or RATIOS"
    compared, wrong = 0, []
    for name in names:
        by, metric, range_s = RATES.get(name) or (("kind", "scope"), "", 3600)
        end_ms, got = recorded(prom, name, by)
        candidates = []
        for drop in (False, True):
            if name in RATES:
                candidates.append(raw_rates(prom, metric, by, end_ms, range_s, drop))
                continue
            scale, num, den = RATIOS[name.removeprefix("kind_scope:sqm_kpi_")]
            rates = {t.lstrip("-"): raw_rates(prom, f"sqm_kpi_{t.lstrip('-')}_total", by, end_ms, range_s, drop)
                     for t in num + den}
            candidates.append(expected_ratios(scale, num, den, rates))
        if not any(_same(got, want) for want in candidates):
            wrong.append(f"{name}: recorded {got}, expected {candidates[0]}")
        compared += len(got)
    assert not wrong, "recording rules differ from the contract's formulas:\n" + "\n".join(wrong)
    return compared


def _same(got: Rates, want: Rates) -> bool:
    return got.keys() == want.keys() and all(math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-12)
                                             for k in got)


# -- the dashboards -------------------------------------------------------------------------------
class _Seen(dict[str, str]):
    """Variable values that remember which ones an expression used."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.used: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.used.append(key)
        return super().__getitem__(key)


def real_values(prom: Prometheus, dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each query variable's values as Grafana would list them from this Prometheus: its
    label_values() query (other variables at All) and its regex."""
    out: dict[str, list[str]] = {}
    everything = variable_values(dashboard)
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] == "datasource":
            continue  # the test queries Prometheus directly
        assert var["type"] == "query", f"{dashboard['uid']}: variable {var['name']} of type {var['type']}: " \
                                       "this test resolves query variables only"
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"].strip())
        assert m, f"{dashboard['uid']}: variable {var['name']}: not a label_values() query: {var['query']}"
        selector, label = substitute(m.group(1), everything), m.group(2)
        values = prom.get(f"/api/v1/label/{label}/values", **{"match[]": selector})
        if var.get("regex"):
            pattern = re.compile(var["regex"].strip("/"))
            values = [mm.group(1) if mm.groups() else mm.group(0) for v in values if (mm := pattern.search(v))]
        assert values, f"{dashboard['uid']}: variable {var['name']} has no value in the data ({selector})"
        out[var["name"]] = sorted(set(values))
    return out


def last_good_scrape(prom: Prometheus) -> float:
    """The time of the newest scrape of sqm that succeeded. A scrape that fails (a slow /metrics on a
    loaded machine) marks every series stale, and an instant query after it finds nothing: the
    dashboards are evaluated at the last good scrape instead."""
    ups = prom.result('up{job="sqm"}[30s]')
    good = [float(t) for t, v in ups[0]["values"] if v == "1"] if ups else []
    assert good, f"Prometheus has not scraped sqm in the last 30 s: {ups}"
    return good[-1]


def has_data(prom: Prometheus, expr: str, at: float) -> str | None:
    """None when the expression parses and returns data at `at`, else why not."""
    answer = prom.query(expr, at)
    if answer["status"] != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    return None if answer["data"]["result"] else "no data"


def dashboard_failures(prom: Prometheus, range_s: int) -> tuple[int, list[str]]:
    """(expressions evaluated, failures) over every target of every shipped dashboard."""
    dashboards = load()
    assert dashboards, "deploy/grafana/dashboards has no dashboard: nothing would be checked"
    builtins = {"rate_interval": RATE_INTERVAL, "range_": f"{range_s}s", "interval": INTERVAL}
    at = last_good_scrape(prom)
    count, failures = 0, []
    for dashboard in dashboards.values():
        every, real = variable_values(dashboard), real_values(prom, dashboard)
        for t in targets(dashboard):
            count += 1
            where = f"{t.uid} / {t.panel} ({t.ref_id}): {t.expr}"
            values = _Seen(every)
            try:
                expr = substitute(t.expr, values, **builtins)
            except KeyError as exc:
                failures.append(f"{where}\n    unknown variable {exc}")
                continue
            if why := has_data(prom, expr, at):
                failures.append(f"{where}\n    with every variable at All: {why}")
            for name in dict.fromkeys(n for n in values.used if n in real):
                if not any(has_data(prom, substitute(t.expr, {**every, name: v}, **builtins), at) is None
                           for v in real[name]):
                    failures.append(f"{where}\n    no data for any real ${name} ({', '.join(real[name])})")
    return count, failures


#: the health alerts this stack must raise: (alert, target). Their `for` (10m, 5m) is longer than the
#: test runs, so they are pending: what the test can show is that their expressions hold.
EXPECTED_ALERTS = {("SqmAlertDeliveryFailing", "down"), ("SqmNotificationsParked", "refusing")}
WORKERS = ("w1",)
#: an evaluation counts as one of the healthy stack when every scrape in the GOOD_SCRAPES_S seconds
#: before it succeeded and carried every series the health rules read: whichever scrape the
#: evaluation read (the newest one stored when it ran), it was one of those (a scrape takes at most
#: its 1 s timeout, so the one 2-3 s before the evaluation was stored)
GOOD_SCRAPES_S = 3.0


def health_rule_metrics() -> list[str]:
    """The metrics the health rules of sqm-rules.yml read (the functions' names left out)."""
    doc = yaml.safe_load((DEPLOY / "sqm-rules.yml").read_text())
    return sorted({m for g in doc["groups"] for r in g["rules"]
                   for m in re.findall(r"\b(sqm_[a-z_]+|up)\b(?!\s*\()", r["expr"])})


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()  # Python 3.11: "Z", nanoseconds truncated


def healthy_scrapes(prom: Prometheus, metrics: list[str]) -> dict[float, str | None]:
    """Each scrape of sqm of the last 20 s (its time): None if it succeeded with every series the health
    rules read and sqm_worker_up 1 for every worker of the stack, else what it lacked."""
    ups = prom.result('up{job="sqm"}[20s]')
    scrapes = {round(float(t), 3): (None if v == "1" else "failed") for s in ups for t, v in s["values"]}
    names: dict[float, set[str]] = {t: set() for t in scrapes}
    workers_up: dict[float, set[str]] = {t: set() for t in scrapes}
    for s in prom.result(f'{{__name__=~"{"|".join(metrics)}", job="sqm"}}[20s]'):
        for stamp, v in s["values"]:
            t = round(float(stamp), 3)
            names.setdefault(t, set()).add(s["metric"]["__name__"])
            if s["metric"]["__name__"] == "sqm_worker_up" and v == "1":
                workers_up.setdefault(t, set()).add(s["metric"].get("worker", ""))
    for t, why in scrapes.items():
        if why is None and (missing := set(metrics) - names[t]):
            scrapes[t] = f"without {sorted(missing)}"
        elif why is None and (down := set(WORKERS) - workers_up[t]):
            scrapes[t] = f"sqm_worker_up is not 1 for {sorted(down)}"
    return scrapes


def healthy_evaluation(prom: Prometheus, timeout: float = 30) -> list[dict[str, Any]]:
    """The rule groups (/api/v1/rules), once every group with alerts was last evaluated on scrapes of
    the healthy stack (`healthy_scrapes`).

    Alerts say what the rules computed from the data of their last evaluation. Before the worker's
    first heartbeat (5 s after it is ready) the API serves no sqm_worker_up and SqmNoWorker is rightly
    pending (its absent() arm; `for: 2m` is what keeps a starting stack from firing it); a scrape
    that times out on a loaded machine marks every series stale, and the alerts computed from that
    are those of a stack that is not there (SqmTargetDown pending, the expected ones gone). So the
    alerts are read from an evaluation on healthy data, not at some moment after the traffic."""
    metrics = health_rule_metrics()
    deadline = time.monotonic() + timeout
    while True:
        groups: list[dict[str, Any]] = prom.get("/api/v1/rules")["groups"]
        scrapes = healthy_scrapes(prom, metrics)  # after the rules: it covers their evaluations
        why: str | None = None
        for g in groups:
            if not any(r["type"] == "alerting" for r in g["rules"]):
                continue
            at = _epoch(g["lastEvaluation"])
            before = {t: w for t, w in scrapes.items() if at - GOOD_SCRAPES_S <= t <= at}
            if len(before) < 2 or any(w is not None for w in before.values()):
                why = f"group {g['name']} last evaluated at {at:.3f}, the scrapes before it: {before}"
                break
        if why is None:
            return groups
        if time.monotonic() > deadline:
            raise AssertionError(f"no rule evaluation on {GOOD_SCRAPES_S} s of healthy scrapes within "
                                 f"{timeout} s: {why}")
        time.sleep(0.25)


def check_rules_health(prom: Prometheus) -> None:
    """Every rule evaluated without error; at an evaluation on the healthy stack's data, the health
    alerts active are exactly those this stack must raise, pending while Prometheus has run less than
    their `for` (nothing on the workers, the pipeline, the scrape or the view)."""
    files = [yaml.safe_load((DEPLOY / f).read_text()) for f in ("sqm-rules.yml", "sqm-recording.yml")]
    shipped = sum(len(g["rules"]) for f in files for g in f["groups"])
    groups = healthy_evaluation(prom)
    loaded = [r for g in groups for r in g["rules"]]
    assert len(loaded) == shipped, f"{len(loaded)} rules loaded, {shipped} shipped"
    bad = [(r["name"], r["health"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not bad, f"rules that do not evaluate: {bad}"
    active = {(a["labels"]["alertname"], a["labels"].get("target", "")): (a["state"], a["activeAt"], r["duration"])
              for r in loaded if r["type"] == "alerting" for a in r["alerts"]}
    assert active.keys() >= EXPECTED_ALERTS, f"expected {EXPECTED_ALERTS} among the active alerts: {active}"
    unexpected = {k: v for k, v in active.items() if k[0] not in {name for name, _ in EXPECTED_ALERTS}}
    assert not unexpected, f"alerts a healthy stack must not raise (state, since, for): {unexpected}"
    ran = time.time() - prom.started
    early = {k: v for k, v in active.items() if v[0] != "pending" and ran < v[2]}
    assert not early, f"alerts firing though Prometheus has run {ran:.0f} s, less than their `for`: {early}"


def timed(what: str, took: dict[str, float], fn: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        took[what] = round(time.monotonic() - t0, 1)


def test_dashboards_and_recording_rules_on_a_real_prometheus(broker: EmbeddedBroker, tmp_path: Path) -> None:
    took: dict[str, float] = {}
    hook = WebhookSink().start()
    stack = Stack(broker, tmp_path, SQM_METRICS_AGENT_SCOPES="true", SQM_INGEST_TOKEN=TOKEN,
                  SQM_RULES_FILE=str(rules_file(tmp_path)), SQM_DELIVERY_BACKOFF_MAX_S="1",
                  SQM_ALERT_FULL_EVAL_S="1", SQM_FORECAST_EVERY_S="5")
    stack.env["SQM_NOTIFY_FILE"] = str(notify_file(tmp_path, hook, stack.url))
    prom: Prometheus | None = None
    try:
        t0 = time.monotonic()
        prom = Prometheus(tmp_path, f"127.0.0.1:{stack.port}")  # its scrapes fail until the API listens
        stack.worker()
        stack.notifier()
        first = first_wave(time.time())
        produce(stack, first)  # while the processes start
        stack.api()
        took["processes up"] = round(time.monotonic() - t0, 1)
        ingest_over_http(stack)
        expected = len(first) + 1
        wait_for(lambda: stack.seen_messages() >= expected, 60, f"{expected} messages in the view", stack)
        took["first wave counted"] = round(time.monotonic() - t0, 1)

        def delivered() -> bool:
            m = stack.metrics()
            return (m.get("sqm_alert_deliveries_total{target=hook}", 0) > 0
                    and m.get("sqm_alert_outbox_parked{target=refusing}", 0) > 0
                    and m.get("sqm_alert_outbox_target_depth{target=down}", 0) > 0)

        wait_for(delivered, 30, "deliveries: delivered, parked and waiting", stack)
        settle(stack, prom)  # the first wave's counters are stored: the second raises them
        took["alerts delivered, first wave scraped"] = round(time.monotonic() - t0, 1)
        second = random_stream(600, time.time(), seed=42, bands=LIVE) + agent_shift(100, time.time(), agents=30,
                                                                                     seed=6, span_s=60)
        produce(stack, second)
        expected += len(second)
        wait_for(lambda: stack.seen_messages() >= expected, 60, f"{expected} messages in the view", stack)
        settle(stack, prom, evaluations=2)
        took["second wave scraped and recorded"] = round(time.monotonic() - t0, 1)

        timed("rules health", took, lambda: check_rules_health(prom))
        compared = timed("recording rules", took, lambda: check_recording_rules(prom))
        assert compared >= 100, f"only {compared} recorded values compared"
        range_s = math.ceil(time.time() - prom.started)
        count, failures = timed("dashboards", took, lambda: dashboard_failures(prom, range_s))
        assert not failures, f"{len(failures)} of {count} dashboard expressions fail on a real Prometheus:\n" + \
            "\n".join(failures)
        print(f"\n{count} dashboard expressions and {compared} recorded values checked; took {took}")
    finally:
        if prom is not None:
            prom.stop()
        stack.stop()
        hook.stop()
