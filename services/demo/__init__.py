"""Demo data for Spareflow: procedurally generated spare parts and their catalog entries."""
