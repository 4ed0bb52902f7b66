"""Demo traffic model: tickets, calls, surveys and agent states with a daily rhythm and incidents.
Pure (seeded RNG).

`DemoTraffic.due(now)` returns the events whose time has come. Lifecycles are scheduled ahead
(a ticket's first response, resolution, survey), so figures look like a real contact center's:

- **Calls are served by agents.** Each team's phone queue has a roster of agents who log in and out
  with the day, sized every quarter hour by Erlang C for the expected calls (80 % in 20 s, plus a
  margin for breaks), as a workforce plan would. A call waits for the first agent to be free (first
  come, first served); a caller whose patience runs out first abandons. So waits, service level,
  abandonment, occupancy and the agents' states (`agent.state`: on a contact while answering,
  after-contact work after it, away on breaks and lunch, offline after their shift) agree.
- **Incidents.** Every so often one team's contacts surge (an outage: three times the calls) beyond
  what its roster was planned for: its queue is understaffed, callers wait and abandon, first
  responses slow down, CSAT drops. The team answers no ticket during the incident: the tickets already
  waiting are answered after it, so VIP tickets that were waiting when it hit go at risk and then
  overdue.
- Survey comments, in English and Chinese, say what the scores say (a few do not, as real ones), and
  complain about the incident's cause.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from stream.clock import rfc3339
from stream.erlang import required_agents
from stream.folds import IX, Acc

TEAMS = {"billing": "billing-line", "tech": "tech-line", "sales": "sales-line", "returns": "returns-line"}
CHANNELS = ["chat", "email", "social", "phone"]
TIERS = [("vip", 0.1), ("gold", 0.25), ("standard", 0.65)]
SCENARIOS = ["invoice", "login", "refund", "delivery", "upgrade"]
CAUSES = {"billing": ["invoice", "refund"], "tech": ["login", "upgrade"], "sales": ["delivery"],
          "returns": ["delivery", "refund"]}  # what an incident of each team is about
VIP_TARGET_S, STANDARD_TARGET_S = 1800.0, 14400.0  # first-response targets (the KPI workers' defaults)
NPS_OF_CSAT = {1: 1.5, 2: 3.5, 3: 6.0, 4: 8.0, 5: 9.5}  # a customer's likely NPS answer, by CSAT


def csat_of_nps(nps: int) -> int:
    """The CSAT a customer with this NPS answer most likely gave (the table above, inverted)."""
    return 1 if nps <= 2 else 2 if nps <= 4 else 3 if nps <= 6 else 4 if nps <= 8 else 5


# comments by mood, and the complaints of each scenario (what an incident's customers write about)
COMMENTS: dict[str, dict[str, list[str]]] = {
    "positive": {
        "en": ["Quick and friendly, thank you.", "Solved in one call, great service.",
               "The agent was patient and explained everything.", "Fast answer, problem gone.", "Very helpful, thanks!",
               "Sorted in minutes 👍",
               "Really happy with how this was handled.", "Clear, polite and quick. No complaints.",
               "Great support, the agent knew exactly what to do.", "Thanks, much appreciated :)"],
        "zh": ["客服很耐心，问题一次就解决了。", "回复很快，态度很好。", "非常满意，谢谢！", "讲解清楚，很专业。",
               "处理及时，点赞。", "很快就搞定了👍", "服务很周到，谢谢你们。", "问题解决了，效率很高。",
               "客服小姐姐很热情，给个好评。", "没什么问题，很顺利。"],
    },
    "neutral": {
        "en": ["It was fine.", "OK, nothing special.", "Called about my order.",
               "Please add a way to download invoices as PDF.", "Average.", "Got an answer, will see if it works."],
        "zh": ["还可以。", "一般般。", "咨询了一下订单的情况。", "希望能增加电子发票下载功能。", "无",
               "先这样吧，看看后面怎么样。"],
    },
    "negative": {
        "en": ["Took far too long.", "Had to call twice and explain it all again.", "Nobody answered my email "
               "for hours.", "Not helpful at all.", "I was on hold forever and then cut off.",
               "Transferred three times and still no answer.", "Polite, but my problem is still not solved.",
               "Nobody called back as promised 😡"],
        "zh": ["等了太久了。", "打了两次电话，问题还是没解决。", "客服态度不太好。", "一点帮助都没有。",
               "排队半天，最后电话还断了。", "电话一直打不通。", "转了好几次，还是没人能处理。",
               "态度挺好，但是问题没解决。", "说好回电，结果没人联系我。"],
    },
}
COMPLAINTS: dict[str, dict[str, list[str]]] = {  # several wordings of one cause: one topic on the board
    "invoice": {"en": ["I was charged twice this month.", "Double charged again, please fix my bill.",
                       "My bill is wrong, I was billed for a plan I cancelled."],
                "zh": ["这个月被重复扣费了。", "账单金额不对，多扣了钱。", "又被扣了两次费，请尽快处理。"]},
    "login": {"en": ["I still cannot log in to my account.", "The app keeps saying my password is wrong.",
                     "Password reset link never arrives, locked out."],
              "zh": ["账号还是登录不上。", "一直提示密码错误，登录不了。", "重置密码的短信一直收不到，进不去账户。"]},
    "refund": {"en": ["My refund has still not arrived.", "Still waiting for my refund after two weeks.",
                      "Where is my money back? The refund was approved days ago."],
               "zh": ["退款到现在还没到账。", "申请退款两周了还没退。", "退款一直显示处理中，钱没收到。"]},
    "delivery": {"en": ["The tracking has not updated for days.", "Tracking hasn't moved since Monday, where is "
                        "my parcel?", "My delivery is late and nobody can tell me where it is."],
                 "zh": ["物流信息更新不及时。", "快递好几天没有动静了。", "物流信息一直不更新，包裹到底在哪？",
                        "快递延误了，问客服也查不到物流。"]},
    "upgrade": {"en": ["The upgrade broke my service.", "Since the update the app keeps crashing.",
                       "After the upgrade nothing works any more."],
                "zh": ["升级以后服务就用不了了。", "更新之后应用老是闪退。", "升级完什么都用不了了。"]},
}
def daily_factor(ts: float) -> float:
    """0.25 at night .. 1.0 in the early afternoon (UTC), a smooth day curve."""
    hour = datetime.fromtimestamp(ts, UTC).hour + datetime.fromtimestamp(ts, UTC).minute / 60
    return 0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.25


WEEKLY = (1.1, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6)  # Monday first: a busy Monday, a quiet weekend


def season(ts: float) -> float:
    """The demand of the moment against the busiest weekday hour: the day curve times the weekday's."""
    return daily_factor(ts) * WEEKLY[datetime.fromtimestamp(ts, UTC).weekday()]


CALL_SHARE = 0.45  # of contacts, calls; the rest are tickets
TEAM_WEIGHTS = (3, 4, 2, 1)  # billing, tech, sales, returns
SURGE = 3.0  # an incident multiplies its team's contacts
HANDLE_S = 354.0  # expected talk (lognormal, median 240 s) + hold + wrap of a demo call
PATIENCE_S = 180.0  # callers' mean patience; during an outage they hang up sooner (and try again)
INCIDENT_PATIENCE_S = 60.0
INTERVAL_S = 900.0  # the roster changes every quarter hour
BREAKS = [("break", 900.0, 0.7), ("lunch", 1800.0, 0.2), ("training", 1800.0, 0.1)]
BREAK_CHANCE = 0.05  # per logged-in agent and quarter hour


@dataclass
class Agent:
    """One demo agent: when they can take the next call, and whether they are logged in."""

    name: str
    team: str
    queue: str
    logged_in: bool = False
    free_at: float = 0.0  # the end of the current call's wrap-up, or of a break
    break_at: float | None = None  # a break planned from then, taken once the call in hand is done


@dataclass
class Caller:
    """A call waiting in a team's queue."""

    offered: float
    deadline: float  # when the caller's patience runs out
    base: dict[str, Any]
    incident: bool


@dataclass
class Roster:
    """A team's agents, logged in by the plan of each quarter hour, and the callers waiting for them."""

    agents: list[Agent] = field(default_factory=list)
    planned_until: float = 0.0
    queue: collections.deque[Caller] = field(default_factory=collections.deque)


@dataclass
class Incident:
    team: str
    start: float
    end: float
    cause: str = "login"  # a scenario: what the incident's customers contact the team about and complain of

    def active(self, ts: float) -> bool:
        return self.start <= ts < self.end


class DemoTraffic:
    def __init__(self, start: float, rate: float = 1.0, seed: int | None = None,
                 first_incident_after: float = 5.0, incident_s: float = 240.0, incident_every: float = 900.0,
                 history_s: float = 3 * 3600, backfill_s: float = 1800):
        self.rnd = random.Random(seed)
        self.rate = rate
        # each team has the agents its busiest quarter hour needs, and logs in those the hour needs
        self.rosters = {team: Roster([Agent(f"{team}-{i:02d}", team, queue)
                                      for i in range(self.needed(team, peak=True))])
                        for team, queue in TEAMS.items()}
        self.agents = {team: [a.name for a in r.agents] for team, r in self.rosters.items()}
        self._last_state: dict[str, tuple[float, dict[str, Any]]] = {}  # agent -> its last state before the kept span
        self._heap: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        self.last = start
        self.incidents = [Incident("tech", start + first_incident_after, start + first_incident_after + incident_s,
                                   "login")]
        self.incident_every = incident_every
        self.incident_s = incident_s
        self._keep_from = self.events_from = start - backfill_s  # the first event sent
        # one new hire whose contacts are more often not resolved at the first contact: the
        # "assign a mentor" alert has someone to point at
        self.new_hire = self.agents["billing"][1]  # logged in all day (every roster has at least two)
        self._waiting_when_hit(self.incidents[0])
        self._backfill(start, history_s)
        # each agent's state as the kept span begins (the fold must know it), then what follows
        for ts, ev in self._last_state.values():
            heapq.heappush(self._heap, (ts, next(self._seq), ev))
        self._last_state.clear()

    # -- scheduling -----------------------------------------------------------------------
    def _at(self, ts: float, ev: dict[str, Any]) -> None:
        if ts >= self._keep_from:
            heapq.heappush(self._heap, (ts, next(self._seq), ev))
        elif ev["type"] == "agent.state":
            self._last_state[ev["agent"]] = (ts, ev)

    # -- the roster -----------------------------------------------------------------------
    def calls_per_s(self, team: str, ts: float) -> float:
        """The calls a team expects (the plan: no incident)."""
        share = TEAM_WEIGHTS[list(TEAMS).index(team)] / sum(TEAM_WEIGHTS)
        return self.rate * season(ts) * CALL_SHARE * share

    def needed(self, team: str, ts: float = 0.0, *, peak: bool = False) -> int:
        """Agents to log in for a quarter hour: Erlang C for 90 % in 20 s on the expected calls (the
        plan aims above the 80 % target), plus a fifth for breaks and chance, and at least two."""
        lam = self.calls_per_s(team, 13.0 * 3600) if peak else self.calls_per_s(team, ts + INTERVAL_S / 2)
        n = required_agents(lam * HANDLE_S, threshold_s=20, handle_s=HANDLE_S, target=0.9)
        return max(2, math.ceil(n * 1.2))

    def _plan_roster(self, team: str, until: float) -> None:
        """Log agents in and out at each quarter hour up to `until`; send some on a break."""
        r = self.rosters[team]
        b = r.planned_until or math.floor(until / INTERVAL_S) * INTERVAL_S
        while b <= until:
            n = self.needed(team, b)
            for i, a in enumerate(r.agents):
                if i < n and not a.logged_in:
                    a.logged_in, a.free_at = True, b
                    self._state(b, a, "available")
                elif i >= n and a.logged_in:
                    off = max(b, a.free_at)  # the agent finishes the call in hand, then logs off
                    a.logged_in, a.free_at, a.break_at = False, math.inf, None
                    self._state(off, a, "offline")
                elif a.logged_in and a.break_at is None and self.rnd.random() < BREAK_CHANCE:
                    a.break_at = b + self.rnd.uniform(0, INTERVAL_S)
            b += INTERVAL_S
        r.planned_until = b

    def _take_break(self, a: Agent) -> None:
        """The agent's planned break, once the call in hand is done."""
        assert a.break_at is not None
        reason, dur = self._break()
        start = max(a.break_at, a.free_at)
        a.free_at, a.break_at = start + dur, None
        self._state(start, a, "away", reason=reason)
        self._state(start + dur, a, "available")

    def _break(self) -> tuple[str, float]:
        x = self.rnd.random()
        for reason, dur, p in BREAKS:
            if x < p:
                return reason, dur
            x -= p
        return BREAKS[0][0], BREAKS[0][1]

    def _state(self, ts: float, a: Agent, state: str, **extra: Any) -> None:
        self._at(ts, {"event_id": self._eid("as"), "type": "agent.state", "ts": rfc3339(ts), "agent": a.name,
                      "team": a.team, "state": state, "queues": [a.queue], **extra})

    def due(self, now: float) -> list[dict[str, Any]]:
        """Events with ts <= now; new arrivals between the last call and now are generated first."""
        self._arrivals(self.last, now)
        for team in TEAMS:
            self._plan_roster(team, now)
            self._serve(team, now)
        self.last = now
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def incident_for(self, team: str, ts: float) -> bool:
        return any(i.team == team and i.active(ts) for i in self.incidents)

    def cause_at(self, team: str, ts: float) -> str | None:
        """The scenario of the team's incident at `ts`, if one is on."""
        return next((i.cause for i in self.incidents if i.team == team and i.active(ts)), None)

    def _plan(self, until: float) -> None:
        """Incidents up to `until`, planned ahead so that the tickets waiting when one hits exist."""
        while (s := self.incidents[-1].start + self.incident_every) <= until:
            team = self.rnd.choice(list(TEAMS))
            inc = Incident(team, s, s + self.incident_s, self.rnd.choice(CAUSES[team]))
            self.incidents.append(inc)
            self._waiting_when_hit(inc)

    def _waiting_when_hit(self, inc: Incident) -> None:
        """A few VIP tickets of the team opened 20-29 minutes before the incident and not answered yet:
        the incident holds them past 80 % of their target (at risk) and then past it (overdue)."""
        for _ in range(self.rnd.randint(3, 6)):
            self._ticket(inc.start - self.rnd.uniform(1200, 1740), inc.team, tier="vip", waiting_at=inc.start)

    def _arrivals(self, t0: float, t1: float) -> None:
        self._plan(t1 + 3600)
        t = t0
        while True:
            t += self.rnd.expovariate(self._rate(t))
            if t > t1:
                break
            self._arrival(t)

    def _backfill(self, now: float, history_s: float) -> None:
        """History, so that every window has figures as soon as the demo starts.

        Contacts arrive from `history_s` ago, but only events of the last `backfill_s` are sent:
        tickets opened hours ago are resolved in the window as they would be in a contact center that
        has been running all day, so created and resolved balance (no fake backlog growth).
        """
        t = now - history_s
        while t < now:
            t += self.rnd.expovariate(self._rate(t))
            self._arrival(t)

    def _weights(self, t: float) -> list[float]:
        return [w * self._surge(team, t) for team, w in zip(TEAMS, TEAM_WEIGHTS, strict=True)]

    def _surge(self, team: str, t: float) -> float:
        """How much an incident multiplies the team's contacts: SURGE, and at least enough calls for
        3.5 times what its agents can answer (a night roster has more slack per agent than a day's)."""
        if not self.incident_for(team, t):
            return 1.0
        agents = sum(a.logged_in for a in self.rosters[team].agents) or self.needed(team, t)
        return max(SURGE, 3.5 * agents / HANDLE_S / max(self.calls_per_s(team, t), 1e-9))

    def _rate(self, t: float) -> float:
        """Contacts per second: the day's rhythm, raised by an incident's surge."""
        return self.rate * season(t) * sum(self._weights(t)) / sum(TEAM_WEIGHTS)

    # -- one customer contact ---------------------------------------------------------------
    def _fcr(self, agent: str, incident: bool) -> float:
        """Chance that a contact is resolved at the first contact (the centre: about 88 %)."""
        if incident:
            return 0.6
        return 0.5 if agent == self.new_hire else 0.9

    def _answered_after(self, team: str, created: float, fr: float) -> float:
        """A first response that would fall in an incident of the team comes after it (the team is on
        the incident's contacts), in the order the tickets came."""
        for inc in self.incidents:
            if inc.team == team and inc.start <= fr < inc.end and created < inc.end:
                return inc.end + self.rnd.uniform(120, 900)
        return fr

    def _eid(self, prefix: str) -> str:
        return f"demo-{prefix}-{next(self._ids)}"

    def _dims(self, team: str, t: float, tier: str | None = None) -> dict[str, Any]:
        tier = tier or self.rnd.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS])[0]
        scenario = self.rnd.choice(SCENARIOS)
        return {"team": team, "customer_tier": tier, "customer_id": f"cust-{self.rnd.randrange(5000)}",
                "scenario": self.cause_at(team, t) or scenario}

    def _arrival(self, t: float) -> None:
        # an incident brings a surge of contacts to its team (customers asking about the outage)
        team = self.rnd.choices(list(TEAMS), weights=self._weights(t))[0]
        self._plan_roster(team, t)
        if self.rnd.random() < CALL_SHARE:
            self._call(t, team)
        else:
            self._ticket(t, team)

    def _ticket(self, t: float, team: str, tier: str | None = None, waiting_at: float | None = None) -> None:
        rnd, dims = self.rnd, self._dims(team, t, tier)
        tid = f"T{next(self._ids)}"
        channel = rnd.choice(["chat", "email", "social"])
        base = {"ticket_id": tid, "created_at": rfc3339(t), "channel": channel, **dims}
        slow = 8.0 if self.incident_for(team, t) else 1.0
        complaint = rnd.random() < (0.06 if slow > 1 else 0.008)
        self._at(t, {"event_id": self._eid("tc"), "type": "ticket.created", "ts": rfc3339(t), **base,
                     "priority": rnd.choice(["low", "normal", "normal", "high", "urgent"]), "is_complaint": complaint})
        target = VIP_TARGET_S if dims["customer_tier"] == "vip" else STANDARD_TARGET_S
        # agents work the queue by due time: outside incidents a first response comes before the target
        fr = t + min(rnd.lognormvariate(math.log(target * 0.12), 0.6) * slow, target * (3 if slow > 1 else 0.95))
        if waiting_at is not None:  # still waiting when its team's incident hits (`_waiting_when_hit`)
            fr = max(fr, waiting_at)
        fr = self._answered_after(team, t, fr)
        agent = self._someone(team)
        bot = channel == "chat" and rnd.random() < 0.15
        self._at(fr, {"event_id": self._eid("tf"), "type": "ticket.first_response", "ts": rfc3339(fr), **base,
                      "by_bot": bot, **({} if bot else {"agent": agent})})
        res = fr + rnd.lognormvariate(math.log(1200), 0.9) * slow
        contacts = 1 if rnd.random() < self._fcr(agent, slow > 1) else rnd.randint(2, 4)
        self._at(res, {"event_id": self._eid("tr"), "type": "ticket.resolved", "ts": rfc3339(res), **base,
                       "agent": agent, "contacts": contacts, "by_bot": bot, "is_complaint": complaint})
        if rnd.random() < 0.06:
            ro = res + rnd.uniform(300, 3600)
            self._at(ro, {"event_id": self._eid("to"), "type": "ticket.reopened", "ts": rfc3339(ro), **base})
        unhappy = slow > 1 or waiting_at is not None
        self._survey(res + rnd.uniform(60, 600), team, channel, agent, unhappy, ticket_id=tid,
                     tier=dims["customer_tier"], scenario=dims["scenario"])

    def _someone(self, team: str) -> str:
        """An agent of the team who is logged in (tickets are worked between calls)."""
        on = [a.name for a in self.rosters[team].agents if a.logged_in]
        return self.rnd.choice(on or self.agents[team])

    def _call(self, t: float, team: str) -> None:
        rnd, dims = self.rnd, self._dims(team, t)
        cid = f"C{next(self._ids)}"
        base = {"call_id": cid, "queue": TEAMS[team], "channel": "phone", **dims}
        self._at(t, {"event_id": self._eid("co"), "type": "call.offered", "ts": rfc3339(t), **base})
        incident = self.incident_for(team, t)
        patience = rnd.expovariate(1 / (INCIDENT_PATIENCE_S if incident else PATIENCE_S))
        self._serve(team, t)  # the callers before this one first
        self.rosters[team].queue.append(Caller(t, t + patience, base, incident))
        self._serve(team, t)

    def _serve(self, team: str, until: float) -> None:
        """Run the team's queue up to `until`, first come, first served: each time an agent is free
        (a call wrapped up, back from a break, just logged in), the caller who waited longest takes
        them; a caller whose patience runs out first abandons."""
        r = self.rosters[team]
        while r.queue:
            on = [a for a in r.agents if a.logged_in]
            agent = min(on, key=lambda a: a.free_at)
            at = max(agent.free_at, r.queue[0].offered)
            if agent.break_at is not None and at >= agent.break_at:
                self._take_break(agent)  # the break comes before the next caller
                continue
            if self._abandon(r, min(at, until)):
                continue  # the head may have changed: look again
            if at > until:
                return
            self._answer(r.queue.popleft(), agent, at)

    def _abandon(self, r: Roster, before: float) -> int:
        """The callers whose patience ran out before `before`, wherever they are in the queue."""
        gone = [c for c in r.queue if c.deadline < before]
        for c in gone:
            r.queue.remove(c)
            w = round(c.deadline - c.offered, 1)
            self._at(c.deadline, {"event_id": self._eid("ca"), "type": "call.abandoned", "ts": rfc3339(c.deadline),
                                  **c.base, "wait_s": w})
        return len(gone)

    def _answer(self, c: Caller, agent: Agent, at: float) -> None:
        rnd, base = self.rnd, c.base
        w = round(at - c.offered, 1)
        self._at(at, {"event_id": self._eid("cn"), "type": "call.answered", "ts": rfc3339(at), **base,
                      "agent": agent.name, "wait_s": w})
        talk, wrap = rnd.lognormvariate(math.log(240), 0.5), rnd.uniform(15, 90)
        hold = rnd.choice([0.0, 0.0, 30.0, 90.0])
        end = at + talk + hold
        agent.free_at = end + wrap
        self._state(at, agent, "on_contact")
        self._state(end, agent, "after_contact_work")
        self._state(end + wrap, agent, "available")
        self._at(end, {"event_id": self._eid("ce"), "type": "call.ended", "ts": rfc3339(end), **base,
                       "agent": agent.name, "talk_s": round(talk, 1), "hold_s": hold, "wrap_s": round(wrap, 1),
                       "resolved": rnd.random() < self._fcr(agent.name, c.incident)})
        self._survey(end + rnd.uniform(30, 300), str(base["team"]), "phone", agent.name, c.incident,
                     call_id=str(base["call_id"]), tier=str(base["customer_tier"]), scenario=str(base["scenario"]))

    def _survey(self, t: float, team: str, channel: str, agent: str, bad: bool, tier: str, scenario: str,
                **ref: str) -> None:
        rnd = self.rnd
        if rnd.random() > (0.6 if bad else 0.35):  # an incident's customers answer the survey more often
            return
        csat = min(5, max(1, round(rnd.gauss(2.6, 1.0) if bad else rnd.gauss(4.5, 0.7))))
        ev: dict[str, Any] = {"event_id": self._eid("sv"), "type": "survey.submitted", "ts": rfc3339(t),
                              "survey_id": f"S{next(self._ids)}", "team": team, "channel": channel, "agent": agent,
                              "customer_tier": tier, "csat": csat, **ref}
        # one customer's scores agree with each other: likelihood to recommend follows satisfaction
        nps = min(10, max(0, round(NPS_OF_CSAT[csat] + rnd.gauss(0, 0.8))))
        if rnd.random() < 0.7:
            ev["nps"] = nps
        if rnd.random() < 0.5:
            ev["ces"] = min(7, max(1, round(rnd.gauss(5 if bad else 2.5, 1.2))))
        if rnd.random() < (0.8 if bad else 0.45 if csat <= 2 else 0.15):  # unhappy customers write more often
            lang = "zh" if rnd.random() < 0.4 else "en"
            declared = rnd.random()  # most upstream systems say the language; the others leave it to sqm
            if declared < 0.6:
                ev["language"] = lang if declared < 0.4 else {"zh": "zh-CN", "en": "en-GB"}[lang]
            ev["comment"] = self._comment(min(csat, csat_of_nps(nps)), bad, scenario, lang)
        self._at(t, ev)

    def _comment(self, csat: int, bad: bool, scenario: str, lang: str) -> str:
        """What a customer with this score writes: the mood of the score (one in twenty says the
        opposite, as real comments do), and during an incident often its cause."""
        mood = "negative" if csat <= 2 else "neutral" if csat == 3 else "positive"
        if self.rnd.random() < 0.05:
            mood = "negative" if mood == "positive" else "positive"
        if (mood == "negative" and (bad or self.rnd.random() < 0.3)) or (mood == "neutral" and bad):
            return self.rnd.choice(COMPLAINTS[scenario][lang])  # an incident's customers write about its cause
        return self.rnd.choice(COMMENTS[mood][lang])


def history(until: float, days: float, rate: float = 1.0, seed: int = 0,
            minute_s: float = 7 * 86400) -> list[tuple[str, str, int, Acc]]:
    """The demo's past as KPI history rows (`HistoryStore.replace_source`), so that the forecast and the
    comparisons have weeks to read on the first start: calls offered and tickets created per minute
    (hours beyond `minute_s` before `until`), Poisson draws of the plan's rates (no incidents), for
    `all`, each team and each team's queue. Other KPIs have no backfilled history."""
    rng = np.random.default_rng(seed)
    t0 = int((until - days * 86400) // 3600 * 3600)
    end = int(until // 60 * 60)
    minutes = np.arange(t0, end, 60, dtype=np.int64)
    shape = np.array([season(float(t) + 30.0) for t in minutes]) * rate * 60.0
    rows: list[tuple[str, str, int, Acc]] = []
    cut = (end - minute_s) // 3600 * 3600  # an hour is either minute rows or one hour row, never both
    total = {k: np.zeros(len(minutes)) for k in ("offered", "created")}
    for team, weight in zip(TEAMS, TEAM_WEIGHTS, strict=True):
        share = weight / sum(TEAM_WEIGHTS)
        counts = {"offered": rng.poisson(shape * CALL_SHARE * share),
                  "created": rng.poisson(shape * (1 - CALL_SHARE) * share)}
        for k, v in counts.items():
            total[k] += v
        rows += _rows(minutes, counts, f"team:{team}", cut)
        rows += _rows(minutes, {"offered": counts["offered"]}, f"queue:{TEAMS[team]}", cut)
    rows += _rows(minutes, total, "all", cut)
    return rows


def _rows(minutes: np.ndarray, counts: dict[str, np.ndarray], scope: str,
          cut: float) -> list[tuple[str, str, int, Acc]]:
    by: dict[tuple[str, int], Acc] = collections.defaultdict(Acc)
    for name, v in counts.items():
        i = IX[name]
        for t, x in zip(minutes.tolist(), v.tolist(), strict=True):
            if x:
                key = ("m", t) if t >= cut else ("h", t - t % 3600)
                by[key].v[i] += x
    return [(res, scope, t, acc) for (res, t), acc in sorted(by.items())]
