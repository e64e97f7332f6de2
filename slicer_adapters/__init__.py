"""Slicer adapters: turn a mesh and a print profile into G-code and estimates. Knows nothing of orders."""
