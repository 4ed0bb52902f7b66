"""GET /v1/comments and /v1/topics: what the survey comments say (docs/voice.md, docs/api.md)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ReadAuthenticated, ViewDep, require_scope
from stream.clock import rfc3339
from stream.records import Comment

router = APIRouter(prefix="/v1", tags=["voice"], dependencies=[ReadAuthenticated])

Window = Literal["5m", "15m", "1h", "24h"]
Label = Literal["negative", "neutral", "positive"]


class CommentOut(BaseModel):
    survey_id: str
    ts: str = Field(description="RFC 3339 UTC: when the survey was submitted")
    team: str
    agent: str | None
    csat: int | None
    nps: int | None
    ces: int | None
    comment: str = Field(description="verbatim")
    language: str = Field(description="zh, en or other: the event's primary subtag, else detected")
    sentiment: float = Field(description="in [-1, 1], unrounded")
    label: Label
    topics: list[str] = Field(description="topic keys, at most 3 (GET /v1/topics names them)")
    mismatch: bool = Field(description="the label contradicts the scores (voice.md)")

    @classmethod
    def of(cls, m: Comment) -> CommentOut:
        return cls(survey_id=m.survey_id, ts=rfc3339(m.ts), team=m.team, agent=m.agent, csat=m.csat, nps=m.nps,
                   ces=m.ces, comment=m.text, language=m.language or "other", sentiment=m.sentiment,
                   label=m.label, topics=list(m.topics), mismatch=m.mismatch)


class CommentsResponse(BaseModel):
    scope: str
    as_of: str
    window: Window | None
    comments: list[CommentOut]


class TopicOut(BaseModel):
    topic: str = Field(description="the topic key (`/v1/comments?topic=` takes it)")
    name: str = Field(description="the topic's name in the requested language")
    count: int = Field(description="negative and neutral comments on the topic in the window")
    share: float | None = Field(description="count / the scope's negative and neutral comments in the window")
    change: int | None = Field(description="count minus the previous window's; null when it had no comment")
    examples: list[CommentOut] = Field(description="up to three of its comments, newest first, verbatim")


class TopicsResponse(BaseModel):
    scope: str
    as_of: str
    window: Window
    comments_negative_neutral: int = Field(description="the shares' denominator")
    topics: list[TopicOut]


@router.get("/comments", response_model=CommentsResponse, responses={404: {"description": "unknown scope"}})
async def get_comments(view: ViewDep, scope: str = Query("all", max_length=140),
                       window: Window | None = Query(None, description="only comments within it (default: the "
                                                     "ones kept, the newest 500 per source partition of 24 h)"),
                       label: Label | None = Query(None),
                       topic: str | None = Query(None, max_length=64, description="only comments on this topic key"),
                       limit: int = Query(50, ge=1, le=500)) -> CommentsResponse:
    """The latest survey comments of the scope, newest first, each with its language, sentiment, label,
    topics and mismatch (docs/voice.md)."""
    now = time.time()
    require_scope(view, scope, now=now)
    found = view.comment_list(scope, now=now, window=window, label=label, topic=topic, limit=limit)
    return CommentsResponse(scope=scope, as_of=rfc3339(now), window=window, comments=[CommentOut.of(m) for m in found])


@router.get("/topics", response_model=TopicsResponse, responses={404: {"description": "unknown scope"}})
async def get_topics(view: ViewDep, scope: str = Query("all", max_length=140), window: Window = Query("1h"),
                     limit: int = Query(10, ge=1, le=50),
                     lang: Literal["en", "zh-CN", "zh"] = Query("en", description="language of the topic names")
                     ) -> TopicsResponse:
    """The topics of the scope's negative and neutral comments in the window, by count then change
    (docs/voice.md "Topics")."""
    now = time.time()
    require_scope(view, scope, now=now)
    topics, nn = view.topics(scope, window, now=now, limit=limit)
    language = "zh" if lang.startswith("zh") else "en"
    return TopicsResponse(scope=scope, as_of=rfc3339(now), window=window, comments_negative_neutral=nn, topics=[
        TopicOut(topic=t.key, name=t.name(language), count=t.count, share=t.share, change=t.change,
                 examples=[CommentOut.of(m) for m in t.examples]) for t in topics])
