"""The couriers behind the port, one package each: ``mapping`` (pure: their vocabulary <-> ours) beside
``gateway`` (I/O only). A provider's vocabulary stays in its package."""
