"""Spareflow's platform: the HTTP API, accounts, factories and the arq workers."""
