"""Job functions. Each opens its own unit of work and calls one service."""
