"""Print jobs: a part revision prepared (repaired, oriented, sliced) for one printer."""
