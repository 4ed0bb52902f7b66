"""The voice of the customer (voice.md): a survey comment's language, sentiment, label, topics and
mismatch. Pure: the lexicons ship inside the package (stream/lexicon/), nothing is downloaded.

The default scorer reads a comment as a sequence of segments (English words, or jieba's segments of
Chinese) and looks each one up, with up to three following ones, in a service lexicon of sqm's own,
the longest match first, so that 没人接 or "nobody called back" weigh as customers mean them:

- a negator (不, 没有, not, never) turns the next sentiment within three segments, and weakens it;
  a weak one (不太, "not very") more so: 不太满意 is mildly negative, "not bad" mildly positive;
- an outcome not reached (还没, 一直没, 没人, "still not", "can not", nobody: a negator whose factor is
  <= -1) makes a sentiment within four segments after it, or one just before it, a missing one
  (还没解决, 一点诚意都没有, "still not fixed" are negative), and weighs its own value when there is none
  (退款还没到账, "can't log in");
- an intensifier (非常, "extremely") or a diminisher (有点, "a bit") scales the next sentiment; words of
  intensity 1 (我, 给, "the", "my") only let a negation reach across them;
- a contrast (但是, 不过, "but") splits the comment: the clauses after the last one count 1.5 times,
  those before it half, so "polite, but nothing was solved" is negative; a "contrast" below 1
  (暂时没法评价, "too early to say") withholds the verdict: the comment weighs that much;
- time gone by (三天了, 一个多月了, "for three weeks", "two days later") weighs SPAN, a wait;
- punctuation ends a negation; emoji and emoticons carry their own weight; "!" amplifies.

jieba is given every Chinese term of the lexicon as a word, so that it cuts 还没/到账, not 还/没到/账.

The sum `x` of the weights becomes `x / sqrt(x² + ALPHA)`, a number in (−1, 1) (VADER's normalisation).

Topics (negative and neutral comments only) are the keys of stream/lexicon/topics.tsv whose terms
appear in a clause that is not itself positive (客服态度很好，但是问题没解决 is about `unresolved`, not
`attitude`), at most three in order of appearance, the circumstances (`wait`, `repeat`, `app`) after
the others ("still waiting for my refund" is about `refund` first); a comment that names none takes
its rarest content word (by jieba's dictionary frequency for Chinese, the longest for other languages)
as its topic.

    >>> a = default_analyser()
    >>> v = a.analyse("物流信息一直不更新，太慢了", language=None, csat=5, nps=None)
    >>> v.language, v.label, v.topics, v.mismatch
    ('zh', 'negative', ('delivery', 'wait'), True)
    >>> said = [("退款还没到账", "zh"), ("一点诚意都没有", "zh"), ("Still not fixed", "en"),
    ...         ("Can't log in since the update", "en"), ("还没收到货，暂时没法评价", "zh")]
    >>> [label_of(a.lexicon.score(text, language)) for text, language in said]
    ['negative', 'negative', 'negative', 'negative', 'neutral']
    >>> a.analyse("Still waiting for my refund after two weeks.", language=None, csat=None, nps=None).topics
    ('refund', 'wait')
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar

V = TypeVar("V")
LANGUAGES = ("zh", "en", "other")
LABELS = ("negative", "neutral", "positive")
NEGATIVE_AT, POSITIVE_AT = -0.2, 0.2  # voice.md: negative <= -0.2, positive >= 0.2
MAX_TOPICS = 3
ALPHA = 10.0
NEGATION_REACH = 3  # segments a negator reaches
LACK_REACH = 4  # segments a 还没 / "still not" reaches
SPAN = -1.2  # "N天了", "for three weeks": time gone by, in a service comment a wait
QUICK = 1.6  # "五分钟就", "within ten minutes": done soon
BUT_BEFORE, BUT_AFTER = 0.5, 1.5
LONGEST_TERM = 4  # segments of the longest lexicon term
TOPIC_WORD_MAX = 32  # characters of a fallback topic word
CIRCUMSTANCES = frozenset({"wait", "repeat", "app"})  # topics listed after the others a comment names
JIEBA_TERM_FREQ = 20000  # at least this dictionary count for a lexicon term added to jieba


@dataclass(frozen=True, slots=True)
class Voice:
    """What one comment says (voice.md "Per comment")."""

    language: str
    sentiment: float
    label: str
    topics: tuple[str, ...]
    mismatch: bool


class Scorer(Protocol):
    """Scores a comment in [-1, 1]. `SQM_VOICE_SCORER` names a factory of one (module:callable)."""

    name: str

    def score(self, text: str, language: str) -> float: ...


# -- language ------------------------------------------------------------------------------
def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF


def language_of(declared: str | None, text: str) -> str:
    """The event's language reduced to its primary subtag (zh-CN -> zh), else detected by script:
    `zh` when Han characters are at least a fifth of the letters, `en` for Latin letters, else `other`.

    >>> language_of("zh-Hans-CN", "ok"), language_of(None, "退款还没到账 refund"), language_of(None, "Merci!")
    ('zh', 'zh', 'en')
    """
    if declared:
        return declared.split("-", 1)[0].lower()
    if text.isascii():  # the common English case, at C speed
        return "en" if any(ch.isalpha() for ch in text) else "other"
    han = latin = other = 0
    for ch in text:
        if _is_cjk(ch):
            han += 1
        elif ch.isascii():
            latin += ch.isalpha()
        elif ch.isalpha():
            if unicodedata.name(ch, "").startswith("LATIN"):
                latin += 1
            else:
                other += 1
    letters = han + latin + other
    if han and han * 5 >= letters:
        return "zh"
    if latin and latin >= other:
        return "en"
    return "other"


def label_of(sentiment: float) -> str:
    return "negative" if sentiment <= NEGATIVE_AT else "positive" if sentiment >= POSITIVE_AT else "neutral"


def mismatch_of(label: str, csat: int | None, nps: int | None) -> bool:
    """The label contradicts the scores (ces plays no part; a missing score plays none either)."""
    if label == "positive":
        return (csat is not None and csat <= 2) or (nps is not None and nps <= 3)
    if label == "negative":
        return (csat is not None and csat == 5) or (nps is not None and nps >= 9)
    return False


# -- lexicons ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # s, neg, int, but
    value: float


def _read(name: str) -> list[list[str]]:
    text = resources.files("stream").joinpath("lexicon", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.cache
def lexicon(language: str) -> dict[str, Entry]:
    """The sentiment lexicon of `zh` or `en` (stream/lexicon/<language>.tsv)."""
    out: dict[str, Entry] = {}
    for term, kind, value in _read(f"{language}.tsv"):
        if term in out:
            raise ValueError(f"{language}.tsv: {term!r} twice")
        out[term] = Entry(kind, float(value))
    return out


def _proper_prefixes(terms: Iterable[str]) -> frozenset[str]:
    """Every proper prefix of the terms, by character: a match is extended while it is one."""
    return frozenset(t[:j] for t in terms for j in range(1, len(t)))


@functools.cache
def lexicon_prefixes(language: str) -> frozenset[str]:
    return _proper_prefixes(lexicon(language))


@functools.cache
def topic_prefixes() -> frozenset[str]:
    return _proper_prefixes(topic_lexicon()[1])


def longest(segs: list[str], i: int, joiner: str, table: Mapping[str, V],
            prefixes: frozenset[str]) -> tuple[str, V, int] | None:
    """The longest term of `table` (at most LONGEST_TERM segments) that starts at segment i: (term,
    its value, its segments). Extends one segment at a time while the text so far begins a longer term,
    so that a segment no term starts with costs one lookup."""
    best: tuple[str, V, int] | None = None
    last = min(LONGEST_TERM, len(segs) - i)
    cand, k = segs[i], 1
    while True:
        v = table.get(cand)
        if v is not None:
            best = (cand, v, k)
        if k == last or cand + joiner not in prefixes:
            return best
        cand = cand + joiner + segs[i + k]
        k += 1


@dataclass(frozen=True, slots=True)
class TopicDef:
    key: str
    names: dict[str, str]  # en, zh


@functools.cache
def topic_lexicon() -> tuple[dict[str, TopicDef], dict[str, str]]:
    """(topic key -> its names, term -> topic key), from stream/lexicon/topics.tsv."""
    defs: dict[str, TopicDef] = {}
    terms: dict[str, str] = {}
    for key, en, zh, words in _read("topics.tsv"):
        defs[key] = TopicDef(key, {"en": en, "zh": zh})
        for w in words.split("|"):
            if w in terms:
                raise ValueError(f"topics.tsv: {w!r} in {terms[w]} and {key}")
            terms[w] = key
    return defs, terms


def topic_name(key: str, language: str) -> str:
    """A topic's name in `en` or `zh` (a fallback topic's name is its word)."""
    d = topic_lexicon()[0].get(key)
    return d.names.get(language, d.names["en"]) if d else key


# -- segmentation --------------------------------------------------------------------------
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN_TOKEN = re.compile(r"[:;]-?[()dp]|\d+|[a-z]+(?:[-'][a-z]+)*|[!?]|[^\s\w]", re.IGNORECASE)
_NOT = re.compile(r"n't\b|n’t\b", re.IGNORECASE)
_NOT_WORD = re.compile(r"\b(ca|wo|sha)n['’]t\b", re.IGNORECASE)  # can't, won't, shan't
_NOT_STEM = {"ca": "can", "wo": "will", "sha": "shall"}
_CLAUSE_END = frozenset(".,;!?。，；！？、…~～\n")
_EN_STOP = _words(
    "a an the and or of to in on at for with from by is are was were be been being it its this that these those "
    "i me my mine we our you your he she they them their his her am do does did done have has had having can could "
    "will would should shall may might must just also very really so too than then there here what when where who "
    "why how which about after before again all any some more most other such only own same into over under up down "
    "out off once if because while until as per via get got getting please thank thanks hi hello dear sir madam "
    "one two three four five day days hour hours minute minutes week weeks time times today yesterday now still "
    "customer service support agent team company call called calling phone email chat someone anyone everyone "
    "make made need needed want wanted said says tell told know like even ever much many lot lots thing things "
    "way back going went come came take took give gave let see look able")
_ZH_STOP = _words(
    "的 了 是 我 你 他 她 它 我们 你们 他们 在 有 和 就 也 都 还 又 要 会 能 吗 呢 吧 啊 呀 哦 嗯 么 这 那 这个 那个 "
    "一个 一下 一直 已经 现在 今天 昨天 时候 什么 怎么 为什么 客服 服务 工作人员 人员 电话 问题 情况 事情 东西 "
    "公司 你们家 这次 上次 之前 之后 以后 然后 还是 可能 应该 觉得 感觉 知道 说 让 给 把 被 对 跟 从 到 去 来 "
    "请 请问 麻烦 希望 建议 尽快 谢谢 一次 两次 小时 分钟 天 星期")


def _zh_terms() -> list[str]:
    """The Chinese terms of zh.tsv of two or more characters (jieba keeps them whole)."""
    return [w for w in lexicon("zh") if len(w) >= 2 and all(_is_cjk(c) for c in w)]


class _Segmenter:
    """Segments text per language: jieba for Chinese (its dictionary ships in the package), a word
    pattern for the others. jieba loads once per process, on first use or `warm()` (about 0.7 s)."""

    def __init__(self) -> None:
        self._jieba: Any = None

    def warm(self) -> None:
        if self._jieba is None:
            import jieba  # MIT; dict.txt inside the wheel

            logging.getLogger("jieba").setLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            tk.initialize()
            for term in _zh_terms():  # the lexicons' terms stay whole: 还没/到账, not 还/没到/账
                tk.add_word(term, max(tk.suggest_freq(term, False), JIEBA_TERM_FREQ))
            self._jieba = tk

    def segments(self, text: str, language: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text).lower()
        if language == "zh":
            self.warm()
            return [s for s in self._jieba.lcut(text) if not s.isspace()]
        text = _NOT_WORD.sub(lambda m: _NOT_STEM[m.group(1)] + " not", text)
        return _EN_TOKEN.findall(_NOT.sub(" not", text).replace("cannot", "can not"))

    def frequency(self, word: str) -> int:
        """jieba's dictionary count of a Chinese word (0: unknown)."""
        self.warm()
        return int(self._jieba.FREQ.get(word, 0) or 0)


# -- scoring -------------------------------------------------------------------------------
_ZH_NUMBER = r"(?:\d+|[一二两三四五六七八九十几半多]+)"
_ZH_SPAN = re.compile(rf"^{_ZH_NUMBER}个?多?(?:天|周|星期|礼拜|个月|月|小时|钟头)多?$")
_ZH_QUICK = re.compile(rf"^{_ZH_NUMBER}(?:分钟|秒|秒钟)$")
_EN_NUMBER = _words("two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
                    "several few couple many")
_EN_UNIT = _words("days weeks months hours")
_EN_SPAN_BEFORE = _words("for been over after")
_EN_SPAN_AFTER = _words("now later")
_EN_MINUTES = _words("minutes mins")
_EN_MINUTES_BEFORE = _words("for waited takes taking over")
_EN_QUICK_BEFORE = _words("in within under")
_EN_QUICK_UNIT = _words("minutes mins seconds")
_SPAN_ENTRY = Entry("s", SPAN)
_ZH_CANNOT = {"不了": Entry("s", -2.2), "不上": Entry("s", -2.2), "不到": Entry("s", -1.8),
              "不通": Entry("s", -2.4), "不开": Entry("s", -2.2), "不进": Entry("s", -2.2)}
_QUICK_ENTRY = Entry("s", QUICK)


def _span(segs: list[str], i: int, lang: str) -> tuple[int, Entry | None]:
    """The segments from `i` that say how long it has been (三天了, 一个多月了; "for 3 weeks", "two days
    later": SPAN) or how soon it was done (五分钟就, "within 10 minutes": QUICK), and their weight."""
    n = len(segs)
    if lang == "zh":
        for k in (1, 2):  # 三天/了, 一个/礼拜/了; 五分钟/就
            if i + k < n:
                said = "".join(segs[i:i + k])
                if segs[i + k] == "了" and _ZH_SPAN.match(said):
                    return k + 1, _SPAN_ENTRY
                if segs[i + k] == "就" and _ZH_QUICK.match(said):
                    return k + 1, _QUICK_ENTRY
        return 0, None
    w = segs[i]
    if i + 1 < n and (w.isdigit() or w in _EN_NUMBER):
        unit, before = segs[i + 1], segs[i - 1] if i else ""
        if unit in _EN_UNIT and before in _EN_SPAN_BEFORE or unit in _EN_MINUTES and before in _EN_MINUTES_BEFORE:
            return 2, _SPAN_ENTRY
        if unit in _EN_UNIT and i + 2 < n and segs[i + 2] in _EN_SPAN_AFTER:
            return 3, _SPAN_ENTRY
        if unit in _EN_QUICK_UNIT and before in _EN_QUICK_BEFORE:
            return 2, _QUICK_ENTRY
    return 0, None


def _zh_compound(word: str, lex: dict[str, Entry]) -> Entry | None:
    """A segment that the lexicon lacks, read from its parts: a verb that cannot be done (看不了, 连不上,
    找不到), or a degree word or a negator and a sentiment (真差, 好棒, 不舒服): the sentiment, scaled or
    turned."""
    if len(word) < 2:
        return None
    if len(word) >= 3 and word[-2:] in _ZH_CANNOT and word[:-2] not in lex:  # 看不了, 连不上: it fails
        return _ZH_CANNOT[word[-2:]]
    head, rest = lex.get(word[0]), lex.get(word[1:])
    if head is None or rest is None or rest.kind != "s" or not rest.value:
        return None
    if head.kind == "int" or word[0] == "好":  # 好 before a sentiment is a degree (好棒, 好慢)
        return Entry("s", rest.value * (head.value if head.kind == "int" else 1.3))
    if head.kind == "neg" and head.value > -1:
        return Entry("s", rest.value * head.value)
    return None


@dataclass(slots=True)
class Reading:
    """A comment read against the lexicon: its sentiment and, per clause, its sum and its terms."""

    sentiment: float
    clauses: list[tuple[float, list[str]]]  # (weighted sum, its segments)
    joiner: str = " "


class LexiconScorer:
    """sqm's default scorer: the service lexicons of stream/lexicon/ (see the module's docstring)."""

    name = "lexicon"

    def __init__(self, segmenter: _Segmenter | None = None) -> None:
        self.seg = segmenter or _Segmenter()

    def score(self, text: str, language: str) -> float:
        return self.read(text, language).sentiment

    def read(self, text: str, language: str) -> Reading:
        lang = "zh" if language == "zh" else "en"
        lex, joiner, pre = lexicon(lang), "" if lang == "zh" else " ", lexicon_prefixes(lang)
        segs = self.seg.segments(text, language)
        n = len(segs)
        clauses: list[tuple[float, list[str]]] = []
        items: list[tuple[float, int]] = []  # (weight, contrast section)
        section, words = 0, list[str]()
        sums = [0.0]  # the current clause's sum
        negate: tuple[float, int] | None = None  # (factor, segments left)
        lack: tuple[float, int] | None = None  # a pending 还没 / "still not": (its weight, segments left)
        last: tuple[int, int] | None = None  # the last sentiment: (its index in items, the segment after it)
        boost, bangs, mute, i = 1.0, 0, 1.0, 0

        def add(w: float) -> None:
            items.append((w, section))
            sums[0] += w

        while i < n:
            term, entry, start = segs[i], None, i
            found = longest(segs, i, joiner, lex, pre)
            if found is not None:
                term, entry, k = found
                i += k
            else:
                k, entry = _span(segs, i, lang)
                if entry is None and lang == "zh":
                    entry = _zh_compound(term, lex)
                term = joiner.join(segs[i:i + (k or 1)])
                i += k or 1
            ends = entry is None and term in _CLAUSE_END
            if lack is not None and (ends or (entry is not None and entry.kind in ("but", "neg"))):
                add(lack[0])
                lack = None
            if ends:
                bangs += term in "!！"
                clauses.append((sums[0], words))
                sums[0], words, negate, boost, last = 0.0, [], None, 1.0, None
                continue
            words.extend(segs[start:i])
            if entry is None:
                if negate is not None:
                    negate = (negate[0], negate[1] - 1) if negate[1] > 1 else None
                if lack is not None:
                    if lack[1] > 1:
                        lack = (lack[0], lack[1] - 1)
                    else:
                        add(lack[0])
                        lack = None
                continue
            if entry.kind == "neg" and entry.value > -1:
                negate = (entry.value, NEGATION_REACH)
            elif entry.kind == "neg":  # a factor <= -1: an outcome not reached (还没, "still not")
                if last is not None and last[1] >= start - 1 and items[last[0]][0] > 0:
                    w = items[last[0]][0]  # 一点诚意都没有: the good just named is what is missing
                    items[last[0]] = (min(entry.value, -w), section)
                    sums[0] += items[last[0]][0] - w
                    last = None
                else:
                    lack = (entry.value, LACK_REACH)
            elif entry.kind == "int":
                boost *= entry.value
                if entry.value == 1 and last is not None and last[1] == start:  # 负责的人都找不到
                    last = (last[0], i)
            elif entry.kind == "but" and entry.value < 1:  # 暂时没法评价, "too early to say": no verdict
                mute = min(mute, entry.value)
            elif entry.kind == "but":
                clauses.append((sums[0], words))
                sums[0], words, negate, boost, last = 0.0, [], None, 1.0, None
                section += 1
            elif entry.value:
                w = entry.value * boost
                if negate is not None:
                    w *= negate[0]
                    negate = None
                if lack is not None:  # 还没解决, "still not happy": the outcome is missing
                    w = min(lack[0], -abs(w))
                    lack = None
                boost = 1.0
                add(w)
                last = (len(items) - 1, i)
        if lack is not None:
            add(lack[0])
        clauses.append((sums[0], words))
        total = 0.0
        for w, s in items:
            total += w * (BUT_AFTER if s == section else BUT_BEFORE) if section else w
        if total and bangs:
            total += math.copysign(0.3 * min(bangs, 3), total)
        total *= mute
        return Reading(total / math.sqrt(total * total + ALPHA), clauses, joiner)


# -- the analyser --------------------------------------------------------------------------
class Analyser:
    """Scores and reads a comment into a `Voice`; `scorer` may be any `Scorer` (a configured model),
    the topics always come from sqm's lexicon reading."""

    def __init__(self, scorer: Scorer | None = None) -> None:
        self.lexicon = LexiconScorer()
        self.scorer: Scorer = scorer or self.lexicon

    @property
    def name(self) -> str:
        return self.scorer.name

    def warm(self) -> None:
        """Load what the first Chinese comment would (jieba's dictionary), before the first batch."""
        self.lexicon.seg.warm()

    def analyse(self, text: str | None, *, language: str | None, csat: int | None, nps: int | None) -> Voice | None:
        """The comment's Voice; None for no comment (missing, empty or white space)."""
        if text is None or not text.strip():
            return None
        lang = language_of(language, text)
        reading = self.lexicon.read(text, lang)
        s = reading.sentiment if self.scorer is self.lexicon else _clip(self.scorer.score(text, lang))
        label = label_of(s)
        topics = self.topics(reading, lang) if label != "positive" else ()
        return Voice(lang, s, label, topics, mismatch_of(label, csat, nps))

    def topics(self, reading: Reading, language: str) -> tuple[str, ...]:
        terms, pre = topic_lexicon()[1], topic_prefixes()
        joiner = reading.joiner
        out: list[str] = []
        content: list[str] = []
        for clause_sum, segs in reading.clauses:
            if clause_sum > 0:
                continue
            i, n = 0, len(segs)
            while i < n:
                found = longest(segs, i, joiner, terms, pre)
                if found is not None:
                    if found[1] not in out:
                        out.append(found[1])
                    i += found[2]
                else:
                    if self._content(segs[i], language):
                        content.append(segs[i])
                    i += 1
        if out:  # the circumstances (waiting, calling again, the app) after what went wrong
            out.sort(key=lambda k: k in CIRCUMSTANCES)
            return tuple(out[:MAX_TOPICS])
        if not content:
            return ()
        if language == "zh":
            freq = self.lexicon.seg.frequency
            word = min(content, key=lambda w: (freq(w), -len(w), w))
        else:
            word = max(content, key=lambda w: (len(w), w))
        return (_singular(word)[:TOPIC_WORD_MAX],)

    @staticmethod
    def _content(word: str, language: str) -> bool:
        if language == "zh":
            return len(word) >= 2 and word not in _ZH_STOP and any(_is_cjk(c) for c in word) \
                and word not in lexicon("zh")
        return len(word) >= 4 and word.isalpha() and word not in _EN_STOP and word not in lexicon("en")


def _singular(word: str) -> str:
    if word.isascii() and len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _clip(x: float) -> float:
    """A configured scorer's number in [-1, 1]; one that is not a finite number reads as 0 (neutral)."""
    x = float(x)
    if not math.isfinite(x):
        return 0.0
    return -1.0 if x < -1 else 1.0 if x > 1 else x


def load_scorer(spec: str) -> Scorer | None:
    """`lexicon` (None: the default), or `module:callable` returning a Scorer (a model shipped in a
    package; it must not download anything)."""
    if spec in ("", "lexicon"):
        return None
    module, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"SQM_VOICE_SCORER={spec!r}: expected 'lexicon' or 'module:callable'")
    factory: Callable[[], Scorer] = getattr(importlib.import_module(module), attr)
    scorer = factory()
    if not callable(getattr(scorer, "score", None)):
        raise ValueError(f"{spec} did not return a scorer (an object with score(text, language))")
    return scorer


@functools.cache
def default_analyser() -> Analyser:
    """One lexicon analyser per process (jieba's dictionary is 80 MB: load it once)."""
    return Analyser()
