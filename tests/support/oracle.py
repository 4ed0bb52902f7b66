"""An independent oracle: docs/kpis.md's formulas computed directly over a list of event dicts.

Written from docs/kpis.md's formulas, not from stream/: no buckets (exact `now - W < ts <= now`), no sketch
(exact order statistics), no shared code beyond the standard library, except one: a comment's reading
(sentiment and label) is the scorer's (stream/voice.py), since what the comment KPIs must show is the count
and mean of those per-comment values (voice.md); the mismatch rule is written again here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from stream.voice import Voice, default_analyser

WINDOW_S = {"5m": 300, "15m": 900, "1h": 3600, "24h": 86400}


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def scopes(ev: dict[str, Any]) -> set[str]:
    out = {"all", f"team:{ev['team']}", f"tier:{ev.get('customer_tier', 'standard')}"}
    chan = ev.get("channel", "phone" if ev["type"].startswith("call.") else None)
    out.add(f"channel:{chan}")
    if ev.get("agent"):
        out.add(f"agent:{ev['agent']}")
    if ev.get("queue"):
        out.add(f"queue:{ev['queue']}")
    return out


def unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for ev in events:
        if ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            out.append(ev)
    return out


def voice(e: dict[str, Any]) -> Voice | None:
    """One survey's reading: the scorer's, per comment (what the KPIs must be the mean of)."""
    return default_analyser().analyse(e.get("comment"), language=e.get("language"), csat=e.get("csat"),
                                      nps=e.get("nps"))


def mismatch(label: str, e: dict[str, Any]) -> bool:
    """voice.md's mismatch, written again from the spec's words."""
    csat, nps = e.get("csat"), e.get("nps")
    if label == "positive":
        return (csat is not None and csat <= 2) or (nps is not None and nps <= 3)
    if label == "negative":
        return csat == 5 or (nps is not None and nps >= 9)
    return False


def kpis(events: list[dict[str, Any]], scope: str, window: str, now: float,
         fr_target: dict[str, float] | None = None) -> dict[str, tuple[float | None, int, list[float]]]:
    """name -> (value, count, exact candidates for percentiles)"""
    targets = fr_target or {"vip": 1800.0}
    w = WINDOW_S[window]
    evs = [e for e in unique(events) if now - w < _t(e["ts"]) <= now and scope in scopes(e)]

    def of(t: str) -> list[dict[str, Any]]:
        return [e for e in evs if e["type"] == t]

    def dur(e: dict[str, Any]) -> float:
        return max(0.0, _t(e["ts"]) - _t(e["created_at"]))

    def ratio(a: float, b: int) -> tuple[float | None, int, list[float]]:
        return (a / b if b else None, b, [])

    def mean(xs: list[float]) -> tuple[float | None, int, list[float]]:
        return (sum(xs) / len(xs) if xs else None, len(xs), [])

    def p90(xs: list[float]) -> tuple[float | None, int, list[float]]:
        if not xs:
            return (None, 0, [])
        s = sorted(xs)
        r = 0.9 * (len(s) - 1)
        return (s[math.floor(r)], len(s), [s[math.floor(r)], s[math.ceil(r)]])

    created, fr, res = of("ticket.created"), of("ticket.first_response"), of("ticket.resolved")
    reopened = of("ticket.reopened")
    answered, abandoned, ended = of("call.answered"), of("call.abandoned"), of("call.ended")
    surveys = of("survey.submitted")
    long_ab = [e for e in abandoned if e["wait_s"] > 5]
    complaints_res = [e for e in res if e.get("is_complaint")]
    csat = [e["csat"] for e in surveys if e.get("csat") is not None]
    nps = [e["nps"] for e in surveys if e.get("nps") is not None]
    ces = [e["ces"] for e in surveys if e.get("ces") is not None]
    said = [v for v in (voice(e) for e in surveys) if v is not None]
    return {
        "tickets_created": (float(len(created)), len(created), []),
        "first_response_mean_s": mean([dur(e) for e in fr]),
        "first_response_p90_s": p90([dur(e) for e in fr]),
        "first_response_sla_rate": ratio(
            sum(dur(e) <= targets.get(e.get("customer_tier", "standard"), 14400.0) for e in fr), len(fr)),
        "resolution_mean_s": mean([dur(e) for e in res]),
        "resolution_p90_s": p90([dur(e) for e in res]),
        "fcr_rate": ratio(sum(e["contacts"] == 1 for e in res) + sum(e["resolved"] for e in ended),
                          len(res) + len(ended)),
        "reopen_rate": ratio(len(reopened), len(res)),
        "complaint_rate": ratio(sum(bool(e.get("is_complaint")) for e in created), len(created)),
        "complaint_resolved_24h_rate": ratio(sum(dur(e) <= 86400 for e in complaints_res), len(complaints_res)),
        "bot_resolution_rate": ratio(sum(bool(e.get("by_bot")) for e in res), len(res)),
        "backlog_growth": (float(len(created) - len(res)), len(created) + len(res), []),
        "calls_offered": (float(len(of("call.offered"))), len(of("call.offered")), []),
        "calls_answered": (float(len(answered)), len(answered), []),
        "calls_abandoned": (float(len(abandoned)), len(abandoned), []),
        "service_level": ratio(sum(e["wait_s"] <= 20 for e in answered), len(answered) + len(long_ab)),
        "abandonment_rate": ratio(len(long_ab), len(answered) + len(long_ab)),
        "asa_s": mean([e["wait_s"] for e in answered]),
        "aht_s": mean([e["talk_s"] + e["hold_s"] + e["wrap_s"] for e in ended]),
        "survey_responses": (float(len(surveys)), len(surveys), []),
        "csat": ratio(sum(c >= 4 for c in csat), len(csat)),
        "nps": (100.0 * (sum(n >= 9 for n in nps) - sum(n <= 6 for n in nps)) / len(nps) if nps else None,
                len(nps), []),
        "ces_mean": mean([float(c) for c in ces]),
        "comments": (float(len(said)), len(said), []),
        "negative_comment_rate": ratio(sum(v.label == "negative" for v in said), len(said)),
        "sentiment_mean": mean([v.sentiment for v in said]),
        "mismatch_rate": ratio(sum(mismatch(v.label, e) for v, e in zip(said, (e for e in surveys if voice(e)),
                                                                          strict=True)), len(said)),
        # time in state counts from the window's first bucket (kpis.md: the start may be off by one bucket)
        **agent_shares(events, scope, (now - w) // 60 * 60, now),
    }


def assert_matches(actual: dict[str, dict[str, Any]], expected: dict[str, tuple[float | None, int, list[float]]],
                   where: str) -> None:
    for name, (value, count, candidates) in expected.items():
        got = actual[name]
        assert got["count"] == count, f"{where} {name}: count {got['count']} != {count}"
        if value is None:
            assert got["value"] is None, f"{where} {name}: {got['value']} != null"
        elif candidates:
            lo, hi = min(candidates), max(candidates)
            assert lo * 0.98 - 1e-9 <= got["value"] <= hi * 1.02 + 1e-9, \
                f"{where} {name}: {got['value']} vs {candidates}"
        else:
            assert got["value"] is not None and math.isclose(got["value"], value, rel_tol=1e-9, abs_tol=1e-6), \
                f"{where} {name}: {got['value']} != {value}"


LIVE_TICKET_KINDS = ("all", "team", "agent", "channel", "tier")
LIVE_CALL_KINDS = ("all", "team", "queue", "channel", "tier")
LIVE_AGENT_KINDS = ("all", "team", "queue")


def agents(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """workforce.md "Agent live state", in stream order (the offset is the position): the newest event
    (ts, then offset) wins; a state is set at its event's ts unless it repeats the current state and
    reason; absent queues keep the last ones."""
    out: dict[str, dict[str, Any]] = {}
    for offset, e in enumerate(unique(events)):
        if e["type"] != "agent.state":
            continue
        ts, cur = _t(e["ts"]), out.get(e["agent"])
        if cur is not None and (ts, offset) <= cur["newest"]:
            continue
        same = cur is not None and (cur["state"], cur["reason"]) == (e["state"], e.get("reason"))
        out[e["agent"]] = {"newest": (ts, offset), "state": e["state"], "reason": e.get("reason"), "team": e["team"],
                           "since": cur["since"] if same and cur else ts,
                           "queues": tuple(e["queues"]) if "queues" in e else (cur["queues"] if cur else ())}
    return out


AGENT_TIME_STATES = ("available", "on_contact", "after_contact_work", "away")


def agent_time(events: list[dict[str, Any]], scope: str, start: float, end: float) -> dict[str, float]:
    """workforce.md "Windowed agent KPIs": seconds in [start, end) the scope's agents spent per state.

    An agent's timeline is the events it accepted in stream order (the newest (ts, then offset) wins,
    as for its live state); each accepted event starts a stretch of its state, in the scopes it gives,
    up to the next accepted event, the last up to `end`. Time before an agent's first event is in no
    state.
    """
    out = dict.fromkeys(AGENT_TIME_STATES, 0.0)
    timeline: dict[str, list[tuple[float, str, set[str]]]] = {}
    queues: dict[str, tuple[str, ...]] = {}
    newest: dict[str, tuple[float, int]] = {}
    for offset, e in enumerate(unique(events)):
        if e["type"] != "agent.state":
            continue
        name, ts = e["agent"], _t(e["ts"])
        if name in newest and (ts, offset) <= newest[name]:
            continue
        newest[name] = (ts, offset)
        if "queues" in e:
            queues[name] = tuple(e["queues"])
        mine = {"all", f"team:{e['team']}", f"agent:{name}", *(f"queue:{q}" for q in queues.get(name, ()))}
        timeline.setdefault(name, []).append((ts, e["state"], mine))
    for stretches in timeline.values():
        for (ts, state, mine), nxt in zip(stretches, [*(t for t, _, _ in stretches[1:]), end], strict=True):
            if state in out and scope in mine:
                out[state] += max(0.0, min(nxt, end) - max(ts, start))
    return out


def agent_shares(events: list[dict[str, Any]], scope: str, start: float, end: float,
                 ) -> dict[str, tuple[float | None, int, list[float]]]:
    """occupancy and away_share of workforce.md over [start, end)."""
    t = agent_time(events, scope, start, end)
    working = t["on_contact"] + t["after_contact_work"]
    ready = working + t["available"]
    on = ready + t["away"]
    return {"occupancy": (working / ready if ready > 0 else None, int(ready), []),
            "away_share": (t["away"] / on if on > 0 else None, int(on), [])}


def live(events: list[dict[str, Any]], scope: str, now: float, fr_target: dict[str, float] | None = None,
         call_horizon_s: float = 4 * 3600, ticket_horizon_s: float = 7 * 86400,
         ) -> dict[str, tuple[float | None, int, list[float]]]:
    """kpis.md "Live state" over the events seen so far (in stream order), at time `now`.

    A ticket is open from its first event until a `ticket.resolved` (a reopen opens it again); its
    scopes are those of its first event, with the agent of its latest event that names one. A call
    waits once offered until any answered, abandoned or ended event; calls offered longer ago than
    the horizon, and tickets created longer ago than theirs, are not counted.
    """
    targets = fr_target or {"vip": 1800.0}
    tickets: dict[str, dict[str, Any]] = {}
    calls: dict[str, dict[str, Any]] = {}
    closed_calls: set[str] = set()
    for e in unique(events):
        if e["type"].startswith("ticket."):
            t = tickets.get(e["ticket_id"])
            if e["type"] == "ticket.resolved":
                tickets.pop(e["ticket_id"], None)
                continue
            if t is None:
                t = tickets[e["ticket_id"]] = {"team": e["team"], "channel": e["channel"],
                                               "tier": e.get("customer_tier", "standard"), "agent": None,
                                               "created": _t(e["created_at"]),
                                               "responded": e["type"] != "ticket.created"}
            if e.get("agent"):
                t["agent"] = e["agent"]
            if e["type"] in ("ticket.first_response", "ticket.reopened"):
                t["responded"] = True
        elif e["type"].startswith("call."):
            if e["type"] == "call.offered":
                if e["call_id"] not in closed_calls:
                    calls.setdefault(e["call_id"], {"offered": _t(e["ts"]), "scopes": {
                        "all", f"team:{e['team']}", f"queue:{e['queue']}", f"channel:{e.get('channel', 'phone')}",
                        f"tier:{e.get('customer_tier', 'standard')}"}})
            else:
                closed_calls.add(e["call_id"])
                calls.pop(e["call_id"], None)
    out: dict[str, tuple[float | None, int, list[float]]] = {}
    kind = scope.split(":", 1)[0]
    if kind in LIVE_TICKET_KINDS:
        mine = []
        for t in tickets.values():
            t_scopes = {"all", f"team:{t['team']}", f"channel:{t['channel']}", f"tier:{t['tier']}"}
            if t["agent"]:
                t_scopes.add(f"agent:{t['agent']}")
            if scope in t_scopes and t["created"] >= now - ticket_horizon_s:
                mine.append(t)
        waiting = [t for t in mine if not t["responded"]]
        target = [targets.get(t["tier"], 14400.0) for t in waiting]
        overdue = sum(t["created"] + tg <= now for t, tg in zip(waiting, target, strict=True))
        at_risk = sum(t["created"] + tg > now >= t["created"] + 0.8 * tg for t, tg in zip(waiting, target,
                                                                                            strict=True))
        out["backlog"] = (float(len(mine)), len(mine), [])
        out["first_response_overdue"] = (float(overdue), overdue, [])
        out["first_response_at_risk"] = (float(at_risk), at_risk, [])
        oldest = min((t["created"] for t in waiting), default=None)
        out["oldest_unanswered_s"] = (max(0.0, now - oldest) if oldest is not None else None, len(waiting), [])
    if kind in LIVE_CALL_KINDS:
        mine_calls = [c for c in calls.values() if scope in c["scopes"] and c["offered"] >= now - call_horizon_s]
        oldest = min((c["offered"] for c in mine_calls), default=None)
        out["calls_waiting"] = (float(len(mine_calls)), len(mine_calls), [])
        out["longest_wait_s"] = (max(0.0, now - oldest) if oldest is not None else None, len(mine_calls), [])
    if kind in LIVE_AGENT_KINDS:
        mine_agents = [a for name, a in agents(events).items()
                       if scope in {"all", f"team:{a['team']}", *(f"queue:{q}" for q in a["queues"])}]
        staffed = sum(a["state"] != "offline" for a in mine_agents)
        out["agents_staffed"] = (float(staffed), staffed, [])
        for state in ("available", "on_contact", "after_contact_work", "away"):
            n = sum(a["state"] == state for a in mine_agents)
            out[f"agents_{state}"] = (float(n), n, [])
        for state in ("available", "away", "after_contact_work"):
            sinces = [a["since"] for a in mine_agents if a["state"] == state]
            out[f"longest_{state}_s"] = (max(0.0, now - min(sinces)) if sinces else None, len(sinces), [])
        waiting = len([c for c in calls.values() if scope in c["scopes"] and c["offered"] >= now - call_horizon_s])
        nobody = not any(a["state"] == "available" for a in mine_agents)
        out["calls_waiting_unattended"] = (float(waiting if nobody else 0), waiting, [])
    return out
