"""Idempotency keys for unsafe requests, as in the IETF Idempotency-Key draft and Stripe's API."""
