"""Webhooks, both ways: signed tracking events in from logistics partners (``inbound``), and order events
out to customers' own systems (``outbound``). Both follow Standard Webhooks (``services.signing``)."""
