"""A Karrio shipping gateway and, through it, its carriers: ``mapping`` (pure) and ``gateway`` (HTTP)."""
