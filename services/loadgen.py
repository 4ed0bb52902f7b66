"""Synthetic contract events, for load tests, benchmarks and the test suite: builders of single
events and `random_stream`, a mix of every event type over chosen ages and dimensions.

    python -m services.loadgen --rate 2000 --seconds 60 --agents 200   # steady load into the topics

Unlike the demo (services/demo.py), these events follow no story: ids, dimensions and values are
drawn uniformly so that every formula and every scope is exercised.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Annotated, Any

import orjson
import typer
from kafka import KafkaProducer

from services.config import Settings
from services.producer import make_producer, route
from stream.clock import rfc3339 as iso

_ids = itertools.count()


def ticket(type_: str, ts: float, created_at: float, ticket_id: str, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": kw.pop("event_id", f"e{next(_ids)}"), "type": type_, "ts": iso(ts), "ticket_id": ticket_id,
          "created_at": iso(created_at), "team": kw.pop("team", "billing"), "channel": kw.pop("channel", "chat")}
    ev.update(kw)
    return ev


def call(type_: str, ts: float, call_id: str, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": kw.pop("event_id", f"e{next(_ids)}"), "type": type_, "ts": iso(ts), "call_id": call_id,
          "queue": kw.pop("queue", "general"), "team": kw.pop("team", "billing")}
    ev.update(kw)
    return ev


def survey(ts: float, survey_id: str, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": kw.pop("event_id", f"e{next(_ids)}"), "type": "survey.submitted", "ts": iso(ts),
          "survey_id": survey_id, "team": kw.pop("team", "billing"), "channel": kw.pop("channel", "chat")}
    ev.update(kw)
    return ev


def agent_state(ts: float, agent: str, state: str, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": kw.pop("event_id", f"e{next(_ids)}"), "type": "agent.state", "ts": iso(ts), "agent": agent,
          "team": kw.pop("team", "billing"), "state": state}
    ev.update(kw)
    return ev


TEAMS = ["billing", "tech", "sales"]
AGENTS = [f"a{i}" for i in range(8)]
CHANNELS = ["chat", "email", "phone"]
TIERS = ["vip", "standard", "gold"]
QUEUES = ["q1", "q2"]
# survey comments (every other survey has one, picked by its index so that the other draws stay as they were):
# both languages, with and without `language`, negation, contrast, emoji, white space, markup
COMMENTS: tuple[tuple[str, str | None], ...] = (
    ("Quick and friendly, thank you.", "en"), ("物流信息更新不及时", None), ("Not helpful at all.", None),
    ("客服态度很好，但是问题没解决", "zh-CN"), ("ok", "en"), ("电话一直打不通", "zh"), ("   ", None),
    ("Sorted in one call 👍", None), ("不太满意", None), ("I was on hold forever", "en-GB"),
    ("<b>refund</b> still missing & no reply", None), ("非常满意，谢谢！", None), ("Где мой заказ?", None),
)


#: event ages (seconds before `now`) kept at least a bucket plus a test's run time away from every
#: window edge, so that bucket rounding cannot decide membership during a test
AGE_BANDS = ((1, 150), (480, 720), (1260, 1500), (5400, 9000), (40000, 80000))


LIVE = ((1, 120),)


def random_stream(n: int, now: float, seed: int = 7, bands: tuple[tuple[int, int], ...] = AGE_BANDS,
                  agents: int = len(AGENTS)) -> list[dict[str, Any]]:
    """n valid events of every type, ages spread over `bands` (default: every window), dimensions mixed."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    weights = (6, 2, 1, 1, 1)[:len(bands)]
    agent_names = AGENTS if agents == len(AGENTS) else [f"a{i}" for i in range(agents)]
    for i in range(n):
        lo, hi = rnd.choices(bands, weights=weights)[0]
        ts = now - rnd.uniform(lo, hi)
        team, agent, chan, tier = rnd.choice(TEAMS), rnd.choice(agent_names), rnd.choice(CHANNELS), rnd.choice(TIERS)
        kind = rnd.random()
        tid = f"t{rnd.randrange(n // 3 + 1)}"
        created = ts - rnd.choice([0, 60, 900, 2000, 5000, 20000, 90000])
        if kind < 0.15:
            out.append(ticket("ticket.created", ts, ts, tid, team=team, channel=chan, customer_tier=tier,
                              is_complaint=rnd.random() < 0.2, **({"agent": agent} if rnd.random() < 0.3 else {})))
        elif kind < 0.3:
            bot = rnd.random() < 0.2
            ev = ticket("ticket.first_response", ts, created, tid, team=team, channel=chan, customer_tier=tier,
                        by_bot=bot)
            if not bot:
                ev["agent"] = agent
            out.append(ev)
        elif kind < 0.42:
            bot = rnd.random() < 0.2
            ev = ticket("ticket.resolved", ts, created, tid, team=team, channel=chan, customer_tier=tier,
                        contacts=rnd.choice([1, 1, 2, 3]), by_bot=bot, is_complaint=rnd.random() < 0.2)
            if not bot:
                ev["agent"] = agent
            out.append(ev)
        elif kind < 0.46:
            out.append(ticket("ticket.reopened", ts, created, tid, team=team, channel=chan, customer_tier=tier))
        elif kind < 0.56:
            out.append(call("call.offered", ts, f"c{i}", team=team, queue=rnd.choice(QUEUES), customer_tier=tier))
        elif kind < 0.66:
            out.append(call("call.answered", ts, f"c{i}", team=team, queue=rnd.choice(QUEUES), agent=agent,
                            wait_s=rnd.choice([0, 3.5, 19.9, 20, 20.1, 45, 120]), customer_tier=tier))
        elif kind < 0.74:
            out.append(call("call.abandoned", ts, f"c{i}", team=team, queue=rnd.choice(QUEUES),
                            wait_s=rnd.choice([0, 2, 5, 5.5, 30, 200]), customer_tier=tier))
        elif kind < 0.84:
            out.append(call("call.ended", ts, f"c{i}", team=team, queue=rnd.choice(QUEUES), agent=agent,
                            talk_s=rnd.uniform(30, 600), hold_s=rnd.choice([0, 15.0]), wrap_s=rnd.uniform(0, 60),
                            resolved=rnd.random() < 0.7, customer_tier=tier, channel=rnd.choice(["phone", "voip"])))
        else:
            ev = survey(ts, f"s{i}", team=team, channel=chan, customer_tier=tier)
            if rnd.random() < 0.8:
                ev["csat"] = rnd.randint(1, 5)
            if rnd.random() < 0.6:
                ev["nps"] = rnd.randint(0, 10)
            if rnd.random() < 0.4 or not ({"csat", "nps"} & ev.keys()):
                ev["ces"] = rnd.randint(1, 7)
            if rnd.random() < 0.5:
                ev["agent"] = agent
            if i % 2 == 0:
                text, lang = COMMENTS[(i // 2) % len(COMMENTS)]
                ev["comment"] = text
                if lang:
                    ev["language"] = lang
            out.append(ev)
    return out


def agent_shift(n: int, now: float, agents: int = 200, seed: int = 5, span_s: float = 120.0) -> list[dict[str, Any]]:
    """n agent.state events of `agents` agents over the last `span_s`, each agent in order through a
    contact centre's cycle: available, on a contact, after-contact work, now and then away or offline."""
    rnd = random.Random(seed)
    cycle = {"available": ["on_contact"] * 8 + ["away", "offline"], "on_contact": ["after_contact_work"],
             "after_contact_work": ["available"] * 9 + ["away"], "away": ["available"], "offline": ["available"]}
    state = {f"a{i}": "offline" for i in range(agents)}
    queues = {a: [QUEUES[i % len(QUEUES)]] for i, a in enumerate(state)}
    names = list(state)
    out = []
    for i in range(n):
        a = rnd.choice(names)
        state[a] = rnd.choice(cycle[state[a]])
        extra = {"reason": rnd.choice(["break", "lunch"])} if state[a] == "away" else {}
        out.append(agent_state(now - span_s + span_s * i / n, a, state[a], team=TEAMS[int(a[1:]) % len(TEAMS)],
                               queues=queues[a], **extra))
    return out


def lifecycles(n: int, now: float, seed: int = 3, span_s: float = 3 * 3600, agents: int = 6) -> list[dict[str, Any]]:
    """n contacts with their whole lifecycles so far, in time order: tickets (created, then maybe a first
    response, a resolution, a reopen) and calls (offered, then maybe answered or abandoned, then ended).
    Contacts start within `span_s` before `now`; events not yet due at `now` are left out, so some
    tickets are open (answered or not) and some calls still wait."""
    rnd = random.Random(seed)
    out: list[tuple[float, int, dict[str, Any]]] = []

    def at(ts: float, ev: dict[str, Any]) -> None:
        if ts <= now:
            out.append((ts, len(out), ev))

    for i in range(n):
        t0 = now - rnd.uniform(0, span_s)
        team, tier = rnd.choice(TEAMS), rnd.choice(TIERS)
        agent = f"a{rnd.randrange(agents)}"
        if rnd.random() < 0.5:
            tid, created, chan = f"lt{seed}-{i}", t0, rnd.choice(["chat", "email"])
            dims = {"team": team, "channel": chan, "customer_tier": tier}
            at(t0, ticket("ticket.created", t0, created, tid, **dims))
            fr = t0 + rnd.expovariate(1 / 1200)
            at(fr, ticket("ticket.first_response", fr, created, tid, agent=agent, **dims))
            res = fr + rnd.expovariate(1 / 2400)
            at(res, ticket("ticket.resolved", res, created, tid, agent=agent, contacts=1, **dims))
            if rnd.random() < 0.2:
                ro = res + rnd.uniform(60, 1800)
                at(ro, ticket("ticket.reopened", ro, created, tid, **dims))
        else:
            cid, queue = f"lc{seed}-{i}", rnd.choice(QUEUES)
            dims = {"team": team, "queue": queue, "customer_tier": tier}
            at(t0, call("call.offered", t0, cid, **dims))
            wait = rnd.expovariate(1 / 600)
            if rnd.random() < 0.2:
                at(t0 + wait, call("call.abandoned", t0 + wait, cid, wait_s=round(wait, 1), **dims))
                continue
            at(t0 + wait, call("call.answered", t0 + wait, cid, agent=agent, wait_s=round(wait, 1), **dims))
            end = t0 + wait + rnd.uniform(60, 900)
            at(end, call("call.ended", end, cid, agent=agent, talk_s=60.0, hold_s=0.0, wrap_s=10.0, resolved=True,
                         **dims))
    return [ev for _, _, ev in sorted(out, key=lambda x: (x[0], x[1]))]


def topic_and_key(ev: dict[str, Any]) -> tuple[str, str]:
    kind, key = route(ev)
    return kind, (key or b"").decode()


app = typer.Typer(add_completion=False, help="Produce a steady stream of synthetic contract events.")


@app.command()
def generate(rate: Annotated[int, typer.Option(help="events per second")] = 1000,
             seconds: Annotated[float, typer.Option(help="how long")] = 60.0,
             agents: Annotated[int, typer.Option(help="distinct agents")] = 200,
             seed: Annotated[int, typer.Option()] = 1) -> None:
    """Events of every type, timed now (ages within two minutes), to the topics of SQM_TOPIC_PREFIX."""
    settings = Settings()
    producer = make_producer(settings)
    sent = steady_load(producer, settings, rate, seconds, agents=agents, seed=seed)
    producer.close()
    typer.echo(f"sent {sent} events to {settings.topic_prefix}*")


def steady_load(producer: KafkaProducer, settings: Settings, rate: int, seconds: float, *, agents: int = 200,
                seed: int = 1) -> int:
    """Produce `rate` events per second for `seconds` (flushed at the end); returns how many were sent."""
    t0 = time.time()
    sent = 0
    while time.time() - t0 < seconds:
        for ev in random_stream(max(1, rate // 10), time.time(), seed=seed + sent, bands=LIVE, agents=agents):
            kind, key = route(ev)
            producer.send(settings.topic(kind), key=key, value=orjson.dumps(ev))
            sent += 1
        ahead = sent / rate - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    return sent


if __name__ == "__main__":
    app()
