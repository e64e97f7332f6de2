"""Microfactory sites and their printers."""
