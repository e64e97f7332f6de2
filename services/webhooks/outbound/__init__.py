"""Outbound webhooks: customers' endpoints receive their orders' events, signed (Standard Webhooks).

A transactional outbox: an order event is a row; the publisher fans unpublished events out into delivery
rows for the organization's endpoints, and deliveries are attempted, retried and logged from their rows.
Redis only carries wake-up calls; the reconciler finds whatever a lost wake-up left behind.
"""
