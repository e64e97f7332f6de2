"""Couriers: the port our shipping code talks to (``ports``) and the adapters behind it."""
