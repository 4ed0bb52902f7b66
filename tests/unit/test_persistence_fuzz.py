"""The contract fuzzed through persistence: hostile and extreme events -> apply -> records -> reload.

Whatever a producer sends (control characters, emoji, 128-character ids, the largest allowed numbers,
timestamps at the edges), every record written stays under the size limit, reloading the records
gives the same state, the figures stay finite and equal to the oracle, and a redelivery after the
reload is recognised as a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.loadgen import iso
from stream.events import MAX_CONTACTS, MAX_DURATION_S, TOPIC_OF_TYPE, Rejected, decode
from stream.folds import KpiConfig
from stream.records import MAX_RECORD_BYTES, BucketValue, Record
from stream.state import PartitionState
from stream.view import View
from tests.support import oracle

NOW = 1_795_400_000.0
NOW_DT = datetime.fromtimestamp(NOW, UTC)

# names: mostly printable (any script, emoji, markup), sometimes a forbidden character
printable = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                    max_size=128)
hostile = st.sampled_from(["x\u0000", "a\u2028b", "\u202eevil", "tab\tx", "\u0085", " ", "e" * 129, "<!channel>",
                           "😀" * 128, "客服" * 64, "' OR 1=1 --", "\\u0000"])
name = st.one_of(printable, printable, printable, hostile)
small_name = st.sampled_from(["billing", "tech", "客服", "😀", "a" * 128, "<b>"])
duration = st.one_of(st.floats(0, MAX_DURATION_S), st.sampled_from([0.0, MAX_DURATION_S, 1e308, -1.0, 5e-324]))
# inside the 24 h window (clear of its edge, which is bucket-accurate only), late, or too far ahead
ts_offset = st.one_of(st.floats(-86400 + 600, 0), st.floats(-86400 * 1.2, -86400 - 600), st.sampled_from([0.0, 301.0]))


@st.composite
def events(draw: st.DrawFn, i: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ticket", "call", "survey"]))
    ts = NOW + draw(ts_offset)
    base: dict[str, Any] = {"event_id": draw(st.one_of(name, st.just(f"id{i}"))), "ts": iso(ts),
                            "team": draw(st.one_of(small_name, name)), "customer_tier": draw(small_name)}
    if kind == "ticket":
        typ = draw(st.sampled_from(["ticket.created", "ticket.first_response", "ticket.resolved"]))
        age = draw(st.one_of(st.floats(0, 400 * 86400), st.sampled_from([0.0, 400 * 86400 - 1, 401 * 86400])))
        base |= {"type": typ, "ticket_id": draw(name), "created_at": iso(ts - age), "channel": draw(small_name),
                 "agent": draw(name), "contacts": draw(st.integers(1, MAX_CONTACTS + 1))}
    elif kind == "call":
        typ = draw(st.sampled_from(["call.offered", "call.answered", "call.abandoned", "call.ended"]))
        base |= {"type": typ, "call_id": draw(name), "queue": draw(st.one_of(small_name, name)),
                 "agent": draw(name), "wait_s": draw(duration), "talk_s": draw(duration),
                 "hold_s": draw(duration), "wrap_s": draw(duration), "resolved": draw(st.booleans())}
    else:
        base |= {"type": "survey.submitted", "survey_id": draw(name), "channel": draw(small_name),
                 "csat": draw(st.integers(1, 5)), "nps": draw(st.integers(0, 10)),
                 "comment": draw(st.one_of(st.text(max_size=200), st.just("x" * 4000), st.just("y" * 4001)))}
    return base


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 40))
    out = [draw(events(i)) for i in range(n)]
    out += [dict(e) for e in draw(st.lists(st.sampled_from(out), max_size=5))]  # redeliveries
    return out


def clean(ev: dict[str, Any]) -> dict[str, Any]:
    """The event as the contract reads it: white space around texts dropped."""
    return {k: v.strip() if isinstance(v, str) else v for k, v in ev.items()}


def feed(state: PartitionState, evs: list[dict[str, Any]], first_offset: int) -> tuple[list[Record], list[Any]]:
    """Apply `evs` at consecutive offsets per topic; the events counted (valid, first of their id on
    their topic; late ones included), each with its id made unique across topics for the oracle."""
    offsets: dict[str, int] = {}
    accepted = []
    for ev in evs:
        topic = TOPIC_OF_TYPE[ev["type"]]
        off = offsets[topic] = offsets.get(topic, first_offset - 1) + 1
        before = counted(state)
        state.apply(topic, off, orjson.dumps(ev), now=NOW, now_dt=NOW_DT)
        if counted(state) > before:
            accepted.append({**clean(ev), "event_id": f"{topic}/{clean(ev)['event_id']}"})
    return state.drain().records, accepted


def counted(state: PartitionState) -> int:
    return sum(sum(c.events.values()) for c in state.counters.values())


def snapshot(state: PartitionState) -> dict[str, Any]:
    return {"buckets": {k: BucketValue(b.wm, b.acc).to_bytes() for k, b in state.buckets.items()},
            "tickets": {k: t.to_bytes() for k, t in state.tickets.items()},
            "calls": {k: c.to_bytes() for k, c in state.calls.items()},
            "comments": {k: c.to_bytes() for k, c in state.comments.items()},
            "counters": {k: c.to_bytes() for k, c in state.counters.items()}}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams())
def test_hostile_events_survive_persistence(evs: list[dict[str, Any]]) -> None:
    note(repr(evs))
    state = PartitionState(0, KpiConfig(), 60, 7 * 86400)
    records, accepted = feed(state, evs, 0)
    for k, v in records:
        assert len(k) + len(v or b"") <= MAX_RECORD_BYTES, (len(k), len(v or b""))

    reloaded = PartitionState(0, KpiConfig(), 60, 7 * 86400)
    reloaded.load(records)
    assert snapshot(reloaded) == snapshot(state)

    view = View(60)
    for k, v in records:
        view.apply(k, v)
    got = {k: {"value": v, "count": c} for k, (v, c) in view.kpis("all", "24h", now=NOW).items()}
    for name_, figure in got.items():
        assert figure["value"] is None or abs(figure["value"]) < 1e12, (name_, figure)
    oracle.assert_matches(got, oracle.kpis(accepted, "all", "24h", NOW), "all/24h")

    # the same messages again, redelivered at later offsets after the reload: nothing new is counted
    before = sum(c.dup for c in reloaded.counters.values())
    _, again = feed(reloaded, evs, 10_000)
    assert again == []
    dup = sum(c.dup for c in reloaded.counters.values()) - before
    ids = {a["event_id"] for a in accepted}  # ids are unique per topic
    assert dup == sum(1 for ev in evs if valid(ev) and f"{TOPIC_OF_TYPE[ev['type']]}/{clean(ev)['event_id']}" in ids)


def valid(ev: dict[str, Any]) -> bool:
    return not isinstance(decode(orjson.dumps(ev), now=NOW_DT, topic_kind=TOPIC_OF_TYPE[ev["type"]]), Rejected)
