"""The voice of the customer (voice.md): the scorer and the topics from tables, the lexicons, the topic
index's records and bounds, and the comment KPIs against the per-comment values for any stream."""

from __future__ import annotations

import math
from collections import Counter
from importlib import resources
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.loadgen import survey
from stream.events import SurveySubmitted
from stream.folds import KpiConfig
from stream.records import TOPICS_PER_BUCKET, CommentKey, TopicBucket, TopicKey, decode_key, encode_key
from stream.state import COMMENTS_KEPT, PartitionState
from stream.view import View
from stream.voice import Analyser, default_analyser, label_of, language_of, load_scorer, mismatch_of
from tests.support.pipeline import NOW

A = default_analyser()


def read(text: str, language: str | None = None, csat: int | None = None, nps: int | None = None) -> Any:
    return A.analyse(text, language=language, csat=csat, nps=nps)


@pytest.mark.parametrize(("text", "label"), [
    # plain, both languages
    ("Very helpful, thanks!", "positive"), ("Terrible service.", "negative"),
    ("非常满意，谢谢！", "positive"), ("服务太差了", "negative"),
    # negation: a negated praise is negative, a negated complaint positive
    ("Not helpful at all.", "negative"), ("not bad at all", "positive"), ("no complaints", "positive"),
    ("不太满意", "negative"), ("一点也不专业", "negative"), ("没什么问题，很顺利", "positive"),
    # the outcome outweighs the manner: the clause after but / 但是 decides
    ("The agent was polite, but nothing was solved.", "negative"), ("客服态度很好，但是问题没解决", "negative"),
    ("Took a while but they fixed it, thanks", "positive"),
    # service phrases weigh as customers mean them
    ("I was on hold forever", "negative"), ("nobody called back", "negative"), ("电话一直打不通", "negative"),
    ("没人接", "negative"), ("敷衍", "negative"), ("踢皮球", "negative"), ("一次就解决了", "positive"),
    # intensifiers and emoji
    ("extremely slow", "negative"), ("👍", "positive"), ("😡😡", "negative"), ("ok", "neutral"),
    # neutral: facts and questions
    ("Called about my order.", "neutral"), ("我想问一下发票什么时候寄", "neutral"),
])
def test_labels(text: str, label: str) -> None:
    v = read(text)
    assert v is not None and v.label == label, (text, v)
    assert -1 <= v.sentiment <= 1 and label_of(v.sentiment) == v.label


def test_intensifier_and_negation_change_the_weight() -> None:
    assert read("very slow").sentiment < read("slow").sentiment < 0
    assert read("满意").sentiment > read("不太满意").sentiment
    assert read("不满意").sentiment < read("不太满意").sentiment  # 不太 is the weaker negation


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t "])
def test_no_comment(text: str | None) -> None:
    assert A.analyse(text, language="en", csat=1, nps=None) is None  # voice.md: white space is no comment


@pytest.mark.parametrize(("declared", "text", "language"), [
    ("zh-CN", "anything", "zh"), ("en-GB", "物流", "en"), ("EN", "x", "en"), ("pt-BR", "x", "pt"),
    (None, "物流信息更新不及时", "zh"), (None, "Tracking has not updated", "en"), (None, "Где мой заказ?", "other"),
    (None, "订单 order 123 还没到", "zh"), (None, "12345 !!!", "other"), ("", "hello", "en"),
])
def test_language(declared: str | None, text: str, language: str) -> None:
    assert language_of(declared, text) == language


@pytest.mark.parametrize(("label", "csat", "nps", "mismatch"), [
    ("positive", 2, None, True), ("positive", 3, None, False), ("positive", None, 3, True),
    ("positive", None, 4, False), ("negative", 5, None, True), ("negative", 4, None, False),
    ("negative", None, 9, True), ("negative", None, 8, False),
    ("neutral", 1, 10, False), ("positive", None, None, False), ("negative", None, None, False),
    ("positive", 5, 2, True), ("negative", 1, 10, True),
])
def test_mismatch(label: str, csat: int | None, nps: int | None, mismatch: bool) -> None:
    assert mismatch_of(label, csat, nps) is mismatch


@pytest.mark.parametrize(("texts", "topic"), [
    (["物流信息更新不及时", "物流信息一直不更新", "Tracking hasn't updated in days", "快递好几天没有动静了"],
     "delivery"),
    (["I was charged twice this month.", "这个月被重复扣费了。"], "billing"),
    (["电话一直打不通", "Couldn't get through on the phone"], "unreachable"),
    (["My refund has still not arrived.", "退款到现在还没到账。"], "refund"),
    (["I still cannot log in to my account.", "账号还是登录不上。"], "login"),
])
def test_one_topic_for_different_wordings(texts: list[str], topic: str) -> None:
    for text in texts:
        v = read(text)
        assert v.label != "positive" and topic in v.topics, (text, v)
        assert len(v.topics) <= 3


def test_topics_come_from_the_complaint_not_the_praise() -> None:
    v = read("客服态度很好，但是问题没解决")
    assert "attitude" not in v.topics and "unresolved" in v.topics
    assert read("Fast delivery, thank you!").topics == ()  # positive comments have no topic


def test_lexicons_are_well_formed() -> None:
    kinds = {"s", "neg", "int", "but"}
    for name in ("en.tsv", "zh.tsv"):
        seen: Counter[str] = Counter()
        for line in resources.files("stream").joinpath("lexicon", name).read_text("utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            term, kind, value = line.split("\t")
            assert kind in kinds and math.isfinite(float(value)), line
            assert term == term.strip() and term, line
            seen[term] += 1
        assert not [t for t, n in seen.items() if n > 1], f"{name}: terms listed twice"
    keys: Counter[str] = Counter()
    terms: Counter[str] = Counter()
    for line in resources.files("stream").joinpath("lexicon", "topics.tsv").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, en, zh, words = line.split("\t")
            keys[key] += 1
            terms.update(words.split("|"))
            assert en and zh
    assert max(keys.values()) == 1 and max(terms.values()) == 1, "a topic key or term listed twice"


class Fixed:
    """A configured scorer (SQM_VOICE_SCORER=module:callable) that says the same of every comment."""

    name = "fixed"

    def score(self, text: str, language: str) -> float:
        return 3.0  # out of range: clipped to 1


def fixed() -> Fixed:
    return Fixed()


def test_a_configured_scorer_replaces_the_sentiment_and_keeps_the_topics() -> None:
    assert load_scorer("lexicon") is None
    scorer = load_scorer("tests.unit.test_voice:fixed")
    assert scorer is not None
    v = Analyser(scorer).analyse("物流信息一直不更新", language=None, csat=1, nps=None)
    assert v is not None and (v.sentiment, v.label, v.mismatch) == (1.0, "positive", True)
    with pytest.raises(ValueError):
        load_scorer("no-colon")


def test_topic_bucket_is_bounded_and_round_trips() -> None:
    tb = TopicBucket()
    for i in range(TOPICS_PER_BUCKET + 10):
        tb.add("negative", (f"t{i}", "common"))
    tb.add("positive", ())
    assert len(tb.counts) == TOPICS_PER_BUCKET and tb.counts["common"] == TOPICS_PER_BUCKET + 10
    assert (tb.comments, tb.nn, tb.dropped) == (TOPICS_PER_BUCKET + 11, TOPICS_PER_BUCKET + 10, 11)
    assert TopicBucket.from_bytes(tb.to_bytes()) == tb
    key = TopicKey(3, 'team:"x"[]', 120)
    assert decode_key(encode_key(key)) == key


def surveys_of(texts: list[tuple[str, int | None, int | None, str | None]], start: float) -> list[dict[str, Any]]:
    out = []
    for i, (text, csat, nps, lang) in enumerate(texts):
        ev = survey(start + i, f"s{i}", team=["billing", "tech"][i % 2], comment=text, event_id=f"v{i}")
        for k, x in (("csat", csat), ("nps", nps), ("language", lang)):
            if x is not None:
                ev[k] = x
        if csat is None and nps is None:
            ev["ces"] = 4
        out.append(ev)
    return out


def fold(events: list[dict[str, Any]], now: float) -> tuple[PartitionState, View]:
    """The events through a partition's state into a view; the ones the contract rejects are dropped
    from `events` (a control character in a comment, say)."""
    st_ = PartitionState(0, KpiConfig(), 60, 86400)
    kept = []
    for off, ev in enumerate(events):
        if isinstance(st_.apply("surveys", off, orjson.dumps(ev), now=now), SurveySubmitted):
            kept.append(ev)
    events[:] = kept
    view = View(60)
    for k, v in st_.drain().records:
        view.apply(k, v)
    return st_, view


SAMPLES = ["物流信息更新不及时", "Not helpful at all.", "非常满意", "ok", "客服态度很好，但是问题没解决", "👍",
           "nobody called back", "   ", "<script>x</script>", "不太满意", "Где мой заказ?"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.sampled_from(SAMPLES), st.text(max_size=40)),
                          st.one_of(st.none(), st.integers(1, 5)), st.one_of(st.none(), st.integers(0, 10)),
                          st.sampled_from([None, "zh-CN", "en", "fr"])), max_size=40))
def test_comment_kpis_are_the_means_of_the_per_comment_values(
        rows: list[tuple[str, int | None, int | None, str | None]]) -> None:
    now = NOW
    events = surveys_of(rows, now - 600)
    _, view = fold(events, now)
    for scope in ("all", "team:billing"):
        mine = [e for e in events if scope == "all" or f"team:{e['team']}" == scope]
        said = [v for v in (A.analyse(e["comment"], language=e.get("language"), csat=e.get("csat"),
                                      nps=e.get("nps")) for e in mine) if v is not None]
        n = len(said)
        assert view.kpi(scope, "comments", "15m", now=now) == (float(n), n)
        rate, count = view.kpi(scope, "negative_comment_rate", "15m", now=now)
        assert count == n and rate == (sum(v.label == "negative" for v in said) / n if n else None)
        mean, _ = view.kpi(scope, "sentiment_mean", "15m", now=now)
        assert (mean is None) == (n == 0)
        if n:
            assert mean is not None and math.isclose(mean, sum(v.sentiment for v in said) / n, abs_tol=1e-12)
        mm, _ = view.kpi(scope, "mismatch_rate", "15m", now=now)
        assert mm == (sum(v.mismatch for v in said) / n if n else None)
        listed = view.comment_list(scope, now=now, limit=500)
        assert sorted(m.sentiment for m in listed) == sorted(v.sentiment for v in said)  # /v1/comments' values
        topics, nn = view.topics(scope, "15m", now=now, limit=50)
        assert nn == sum(v.label != "positive" for v in said)
        expected: Counter[str] = Counter(t for v in said for t in v.topics)
        assert {t.key: t.count for t in topics} == dict(expected)


def test_topics_count_share_change_and_examples() -> None:
    now = NOW
    praise = ("Quick and friendly, thank you.", 5, None, "en")
    before = surveys_of([praise] * 3 + [("物流信息更新不及时", 2, None, None)], now - 1500)  # the window before
    for i, e in enumerate(before):
        e["survey_id"], e["event_id"] = f"b{i}", f"vb{i}"
    texts = ["物流信息更新不及时", "物流信息一直不更新", "Tracking hasn't updated in days", "电话一直打不通",
             "Couldn't get through on the phone", "ok"]
    now_ = surveys_of([(t, 2, None, None) for t in texts], now - 300)
    _, view = fold(before + now_, now)
    topics, nn = view.topics("all", "15m", now=now)
    by = {t.key: t for t in topics}
    assert topics[0].key == "delivery" and nn == 6
    assert (by["delivery"].count, by["delivery"].change) == (3, 2)
    assert by["delivery"].share == pytest.approx(3 / 6)
    assert by["unreachable"].change == 2
    assert [m.text for m in by["delivery"].examples] == ["Tracking hasn't updated in days", "物流信息一直不更新",
                                                        "物流信息更新不及时"]  # newest first, verbatim
    assert view.top_topic("all", "15m", now=now) == (3.0, 6)
    assert [m.text for m in view.comment_list("all", now=now, topic="delivery", window="15m")] == \
        [m.text for m in by["delivery"].examples]
    # no comment in the window before: no change to report
    _, fresh = fold(now_, now)
    assert all(t.change is None for t in fresh.topics("all", "15m", now=now)[0])
    assert fresh.top_topic("team:sales", "15m", now=now) == (None, 0)


def test_topics_survive_a_restart_and_expire_after_two_days() -> None:
    now = NOW
    events = surveys_of([("物流信息一直不更新", 1, None, None), ("I was on hold forever", 2, None, None)], now - 100)
    st_, view = fold(events, now)
    records = [(encode_key(TopicKey(0, s, b)), tb.to_bytes()) for (s, b), tb in st_.topics.items()]
    again = PartitionState(0, KpiConfig(), 60, 86400)
    again.load(records)
    assert again.topics == st_.topics
    st_.expire(now=now + 2 * 86400 + 120)
    assert st_.topics == {}
    tombstones = [(k, v) for k, v in st_.drain().records if isinstance(decode_key(k), TopicKey)]
    assert tombstones and all(v is None for _, v in tombstones)
    for k, v in tombstones:
        view.apply(k, v)
    assert view.topics("all", "24h", now=now)[0] == []


def test_a_replay_does_not_bring_back_comments_the_cap_evicted() -> None:
    now = NOW
    events = surveys_of([(f"comment number {i}", 2, None, "en") for i in range(COMMENTS_KEPT + 120)], now - 3000)
    first, _ = fold(events, now)
    records = [(encode_key(CommentKey(0, sid)), m.to_bytes()) for sid, m in first.comments.items()]
    again = PartitionState(0, KpiConfig(), 60, 86400)
    again.load(records)
    for off, ev in enumerate(events):  # the whole tail again, as after a crash before any commit
        again.apply("surveys", off, orjson.dumps(ev), now=now)
    assert again.comments.keys() == first.comments.keys()
    assert COMMENTS_KEPT <= len(first.comments) <= COMMENTS_KEPT + COMMENTS_KEPT // 10


def test_a_lexicon_topic_is_counted_in_a_bucket_full_of_rare_words() -> None:
    tb = TopicBucket()
    known = {"delivery"}
    for i in range(TOPICS_PER_BUCKET + 5):
        tb.add("negative", (f"word{i}",), known)
    tb.add("negative", ("delivery",), known)
    assert tb.counts["delivery"] == 1 and tb.dropped == 5


def test_a_scorer_that_returns_nan_reads_neutral() -> None:
    class Broken:
        name = "broken"

        def score(self, text: str, language: str) -> float:
            return float("nan")

    v = Analyser(Broken()).analyse("Terrible service.", language="en", csat=1, nps=None)
    assert v is not None and (v.sentiment, v.label) == (0.0, "neutral")


def test_comment_records_of_the_previous_version_are_not_listed() -> None:
    old = orjson.dumps({"o": 3, "ts": NOW - 60, "team": "billing", "channel": "chat", "tier": "vip", "agent": None,
                        "csat": 1, "nps": None, "text": "bad", "language": "zh-CN"})
    view = View(60)
    view.apply(encode_key(CommentKey(0, "s-old")), old)
    assert view.comment_list("all", now=NOW) == []
    st_ = PartitionState(0, KpiConfig(), 60, 86400)
    st_.load([(encode_key(CommentKey(0, "s-old")), old)])
    assert st_.comments == {}


def test_a_late_comment_in_a_settled_bucket_changes_the_cached_counts() -> None:
    now = NOW
    st_, view = fold(surveys_of([("物流信息一直不更新", 1, None, None)], now - 600), now)
    assert view.topics("all", "1h", now=now)[0][0].count == 1  # cached: the bucket is settled
    late = surveys_of([("Tracking hasn't updated in days", 2, None, None)], now - 600)[0]
    late["event_id"], late["survey_id"] = "late", "late"
    st_.apply("surveys", 99, orjson.dumps(late), now=now)
    for k, v in st_.drain().records:
        view.apply(k, v)
    assert view.topics("all", "1h", now=now)[0][0].count == 2
    assert view.top_topic("all", "1h", now=now) == (2.0, 2)
