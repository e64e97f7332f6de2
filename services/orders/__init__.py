"""Orders: a technician's request for a part, routed to a printer with a promised delivery, and its life."""
