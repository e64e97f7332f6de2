"""The geometry report's version: bumped whenever its fields change meaning, so readers can tell."""

REPORT_VERSION = 1
