"""Inbound webhooks: logistics partners' signed tracking events, verified, stored and applied by a worker
(``service``); partners' secrets and their rotation (``partners``)."""
