"""Alerts to a webhook: Slack-compatible JSON, retried with backoff, every attempt recorded."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from querygate.detect._alert import Alert
from querygate.detect._settings import Webhook
from querygate.detect._store import due_webhooks, webhook_result

_ICON = {"high": ":rotating_light:", "medium": ":warning:", "low": ":information_source:"}


def slack_payload(alert: Alert, alert_id: str, actor: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` plus blocks); other tools read ``text``."""
    who = actor or alert.actor_id
    title = f"{_ICON.get(alert.severity, '')} querygate {alert.severity} alert: {alert.rule}"
    facts = [f"*Who:* {who}", f"*Raised at:* {alert.raised_at}", f"*Alert:* `{alert_id}`"]
    if alert.events:
        facts.append(f"*Events (seq):* {', '.join(alert.events[:10])}")
    return {
        "text": f"{title.strip()} for {who}: {alert.summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:2900]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                f"Review: `querygate alerts show {alert_id}`; acknowledge: "
                f"`querygate alerts ack {alert_id} --note ...`"}]},
        ],
        "querygate": {"id": alert_id, **alert.to_json()},
    }


class WebhookSender:
    """Delivers pending alerts; a failure waits ``backoff_s`` x 2^attempts, then gives up."""

    def __init__(self, webhook: Webhook, client: httpx.AsyncClient | None = None) -> None:
        self.webhook = webhook
        self.client = client or httpx.AsyncClient(timeout=webhook.timeout_s)

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Send every alert that is due; return how many were sent."""
        sent = 0
        for stored in await due_webhooks(conn):
            error = await self._post(slack_payload(stored.alert, stored.id))
            attempts = stored.webhook_attempts + 1
            retry = None if error is None or attempts >= self.webhook.max_attempts else \
                self.webhook.backoff_s * 2 ** (attempts - 1)
            await webhook_result(conn, stored.id, sent=error is None, error=error,
                                 retry_in_s=retry)
            sent += error is None
        return sent

    async def _post(self, payload: dict[str, Any]) -> str | None:
        """None when delivered; otherwise what went wrong (never the URL: it is a secret)."""
        try:
            response = await self.client.post(self.webhook.url, json=payload)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"
