"""The built-in courier: ``mapping`` (pure: plans, labels, webhook bodies), ``table`` (its parcels) and
``gateway`` (the table read and written, webhooks posted)."""
