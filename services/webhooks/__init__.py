"""Webhooks: signed events in from logistics partners, and out to customers' own systems."""
