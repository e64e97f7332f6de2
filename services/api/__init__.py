"""The HTTP API: app factory, dependencies, error rendering and endpoints."""
