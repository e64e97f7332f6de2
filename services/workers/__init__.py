"""arq workers: jobs take ids, are idempotent and do one thing."""
