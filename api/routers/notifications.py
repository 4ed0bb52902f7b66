"""Notifications (the delivery outbox): GET /v1/notifications, POST .../retry, DELETE .../{id}
(docs/api.md "Notifications"). Writes need the admin role.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from alerts.history import (
    Conflict,
    NotFound,
    NotificationQuery,
)
from api.alert_rows import notification_view
from api.alert_views import NotificationView
from api.deps import (
    AdminAuthenticated,
    HistoryDep,
    ReadAuthenticated,
)
from stream.clock import rfc3339_opt, utcnow

router = APIRouter(prefix="/v1", tags=["notifications"], dependencies=[ReadAuthenticated])


class NotificationOut(BaseModel):
    id: int
    alert_id: str
    target: str
    reason: str = Field(description="firing, severity_changed, resolved, repeat or escalation")
    status: Literal["pending", "parked", "delivered"]
    attempts: int
    last_error: str | None = Field(description="the last failure; for a parked notification, why it was parked")
    created_at: str | None
    next_at: str | None = Field(description="the next attempt (pending ones)")
    delivered_at: str | None
    parked_at: str | None
    retried_at: str | None = Field(description="the last retry an admin asked for")
    alert: dict[str, Any] = Field(description="the alert as the notification carries it")


class NotificationsOut(BaseModel):
    notifications: list[NotificationOut]
    total: int = Field(description="notifications matching the filters (before limit)")


class RetryOut(BaseModel):
    retried: list[int] = Field(description="queued again: sent at once")
    superseded: list[int] = Field(description="left parked: a later notification of the alert reached the target")


# no control characters (PostgreSQL refuses NUL in a text) and the columns' lengths
TargetName = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f]*$")]
AlertId = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
NotificationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _notification_out(n: NotificationView) -> NotificationOut:
    return NotificationOut(id=n.id, alert_id=n.alert_id, target=n.target, reason=n.reason,
                           status=n.status, attempts=n.attempts, last_error=n.last_error,
                           created_at=rfc3339_opt(n.created_at), next_at=rfc3339_opt(n.next_at),
                           delivered_at=rfc3339_opt(n.delivered_at), parked_at=rfc3339_opt(n.parked_at),
                           retried_at=rfc3339_opt(n.retried_at), alert=n.alert)


@router.get("/notifications", response_model=NotificationsOut)
def list_notifications(
    history: HistoryDep,
    status: Literal["pending", "parked", "delivered"] | None = None,
    target: TargetName = None,
    alert_id: AlertId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NotificationsOut:
    """Notifications of the outbox, newest first: `status=parked` lists those that failed
    permanently (or for a day), with the reason in `last_error`."""
    rows, total = history.notifications(NotificationQuery(status=status, target=target, alert_id=alert_id,
                                                          limit=limit))
    return NotificationsOut(notifications=[_notification_out(notification_view(r)) for r in rows], total=total)


@router.post("/notifications/retry", response_model=RetryOut, dependencies=[AdminAuthenticated])
def retry_notifications(history: HistoryDep, target: TargetName = None, alert_id: AlertId = None) -> RetryOut:
    """Send the parked notifications again (of one target or alert, or all), e.g. after fixing the
    target. One superseded by a later notification of its alert to that target stays parked."""
    retried, superseded = history.retry_parked(now=utcnow(), target=target, alert_id=alert_id)
    return RetryOut(retried=retried, superseded=superseded)


@router.post("/notifications/{notification_id}/retry", response_model=NotificationOut,
             dependencies=[AdminAuthenticated],
             responses={404: {}, 409: {"description": "not parked, or superseded by a later notification"}})
def retry_notification(notification_id: NotificationId, history: HistoryDep) -> NotificationOut:
    """Send one parked notification again."""
    try:
        row = notification_view(history.notification(notification_id))
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if row.status != "parked":
        raise HTTPException(409, f"notification {notification_id} is {row.status}; only parked ones are retried")
    _, superseded = history.retry_parked(now=utcnow(), notification_id=notification_id)
    if superseded:
        raise HTTPException(409, f"notification {notification_id} is superseded: a later notification of alert "
                            f"{row.alert_id} reached {row.target}; discard it (DELETE) instead")
    return _notification_out(notification_view(history.notification(notification_id)))


@router.delete("/notifications/{notification_id}", status_code=204, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {"description": "not parked"}}, response_class=Response)
def discard_notification(notification_id: NotificationId, history: HistoryDep) -> Response:
    """Discard a parked notification (the alert's history keeps the transition)."""
    try:
        history.discard_parked(notification_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    return Response(status_code=204)
