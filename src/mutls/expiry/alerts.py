"""Expiry alerts (issue 7 item 3): notify once per threshold crossing per item.

:func:`run_expiry_check` reads the inventory at ``now``, finds items that crossed a threshold
(``MUTLS_EXPIRY_THRESHOLDS``, default 90, 30, 7 days and 0 = expired) they were not yet
notified for, and sends one notification per item through every configured channel.

Decisions, and why:

- **Once, across restarts and nodes.** The (item, threshold) pairs live in
  ``expiry_notifications`` under a unique constraint. A check *claims* its pairs in a short
  transaction before sending (a second node's insert fails and it skips the item), sends
  outside any transaction (no network wait while holding the database), then writes the audit
  rows. If no channel delivered, the claim is released so the next check tries again.
- **One notification per item per check.** An item first seen already past several thresholds
  (a certificate uploaded with 5 days left) gets one notification, for the most severe
  threshold, and every crossed threshold is marked, so the milder ones never follow.
- **A new certificate starts afresh**: the item key includes the serial, so a renewed
  certificate or a new secret version is a new item.
- **Audited**: one ``expiry.notified`` row per channel, outcome ``ok`` or ``failed``, with the
  item, the threshold, the channel and the attempts. Never a secret: names, subjects, serials
  and dates only.
- Without any channel configured nothing is claimed, so configuring one later still alerts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.audit.log import record
from mutls.config import ExpirySettings
from mutls.errors import PermissionDenied
from mutls.expiry.inventory import ExpiryInventory, ExpiryItem, expiry_inventory
from mutls.expiry.levels import crossed
from mutls.expiry.notify import Delivery, Notice, Sleep, send_email, send_webhook
from mutls.store.database import Database
from mutls.store.models import ExpiryNotification

__all__ = ["CheckReport", "SentNotification", "notice_for", "run_expiry_check"]

SYSTEM_ACTOR = "system:expiry"


@dataclass(frozen=True, kw_only=True)
class SentNotification:
    item: ExpiryItem
    threshold: int
    deliveries: tuple[Delivery, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "item": self.item.to_dict(),
            "threshold_days": self.threshold,
            "deliveries": [
                {
                    "channel": d.channel,
                    "delivered": d.delivered,
                    "attempts": d.attempts,
                    "error": d.error,
                }
                for d in self.deliveries
            ],
        }


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    checked_at: datetime
    items: int
    notifications: list[SentNotification] = field(default_factory=list)
    channels: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "items": self.items,
            "channels": list(self.channels),
            "notifications": [n.to_dict() for n in self.notifications],
            "notes": self.notes,
        }


def notice_for(item: ExpiryItem, threshold: int, *, now: datetime) -> Notice:
    """The message for ``item`` crossing ``threshold``: public facts only."""
    where = f" ({item.environment})" if item.environment else ""
    owner = f" of account {item.account}" if item.account else ""
    if item.days_remaining < 0 or threshold == 0:
        headline = f"{item.kind.value} {item.name}{where} has expired"
    else:
        headline = f"{item.kind.value} {item.name}{where} expires in {item.days_remaining} days"
    payload: dict[str, object] = {
        "event": "certificate.expiry",
        "threshold_days": threshold,
        "sent_at": now.isoformat(),
        "item": item.to_dict(),
    }
    text = (
        f"{headline}{owner}.\n\n"
        f"subject:   {item.subject}\n"
        f"serial:    {item.serial}\n"
        f"not after: {item.not_after.isoformat()}\n"
        f"status:    {item.status.value} (threshold {threshold} days)\n\n"
        "Renew or replace it before then; `mutls expiry` lists everything that expires soon.\n"
    )
    return Notice(payload=payload, subject_line=f"[mutls] {headline}", text=text)


def _channels(settings: ExpirySettings) -> tuple[str, ...]:
    found = []
    if settings.webhook_url:
        found.append("webhook")
    if settings.smtp_url and settings.email_from and settings.email_to:
        found.append("email")
    return tuple(found)


def _claim(db: Database, key: str, thresholds: Sequence[int], now: datetime) -> bool:
    try:
        with db.write() as session:
            session.add_all(
                ExpiryNotification(item_key=key, threshold=t, sent_at=now) for t in thresholds
            )
    except IntegrityError:
        return False  # another check (another node) got there first
    return True


def _pending(
    db: Database, inventory: ExpiryInventory, settings: ExpirySettings, now: datetime
) -> list[tuple[ExpiryItem, list[int]]]:
    keys = {item.key for item in inventory.items}
    with db.read() as session:
        done: set[tuple[str, int]] = {
            (str(k), int(t))
            for k, t in session.execute(
                select(ExpiryNotification.item_key, ExpiryNotification.threshold)
            )
            if k in keys
        }
    due = []
    for item in inventory.items:
        due_now = crossed(item.not_after, now, settings.thresholds)
        fresh = [t for t in due_now if (item.key, t) not in done]
        if fresh:
            due.append((item, fresh))
    return due


def run_expiry_check(
    db: Database,
    settings: ExpirySettings,
    now: datetime,
    *,
    principal: Principal | None = None,
    sleep: Sleep = time.sleep,
) -> CheckReport:
    """Send the notifications due at ``now``; returns what was sent and how it went."""
    actor = principal or Principal.system(SYSTEM_ACTOR)
    actor.require(Permission.EXPIRY_CHECK)
    if actor.account_id is not None:
        raise PermissionDenied(
            "expected a platform-wide token to run the expiry check (it notifies about every "
            "account); this token is scoped to one account"
        )
    inventory = expiry_inventory(
        db, Principal.system(SYSTEM_ACTOR), now=now, gateway_cert_file=settings.gateway_cert_file
    )
    channels = _channels(settings)
    report = CheckReport(
        checked_at=now, items=len(inventory.items), channels=channels, notes=inventory.notes
    )
    if not channels:
        report.notes.append(
            "no alert channel configured (MUTLS_ALERT_WEBHOOK_URL, MUTLS_ALERT_SMTP_URL); "
            "nothing sent and nothing marked as sent"
        )
        return report
    for item, thresholds in _pending(db, inventory, settings, now):
        if not _claim(db, item.key, thresholds, now):
            continue
        threshold = thresholds[0]  # the most severe crossed
        notice = notice_for(item, threshold, now=now)
        deliveries: list[Delivery] = []
        if "webhook" in channels:
            deliveries.append(send_webhook(notice, settings, sleep=sleep))
        if "email" in channels:
            deliveries.append(send_email(notice, settings))
        with db.write() as session:
            for delivery in deliveries:
                record(
                    session,
                    principal=actor,
                    action="expiry.notified",
                    now=now,
                    outcome="ok" if delivery.delivered else "failed",
                    account_id=item.account_id,
                    resource_type=item.kind.value,
                    resource_id=item.id[:64],
                    environment=item.environment,
                    details={
                        "item": item.key,
                        "name": item.name,
                        "subject": item.subject,
                        "serial": item.serial,
                        "not_after": item.not_after.isoformat(),
                        "threshold_days": threshold,
                        "channel": delivery.channel,
                        "attempts": delivery.attempts,
                        "error": delivery.error,
                    },
                )
            if not any(d.delivered for d in deliveries):
                session.execute(
                    delete(ExpiryNotification).where(
                        ExpiryNotification.item_key == item.key,
                        ExpiryNotification.threshold.in_(thresholds),
                    )
                )
        report.notifications.append(
            SentNotification(item=item, threshold=threshold, deliveries=tuple(deliveries))
        )
    return report
