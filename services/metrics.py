"""Prometheus series the platform exports at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_REJECTIONS = Counter(
    "spareflow_webhook_rejections",
    "Inbound webhooks refused before anything was stored, by source and reason",
    ["source", "reason"],
)
