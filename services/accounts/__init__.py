"""Who calls the API: organizations, logistics partners and their API keys."""
