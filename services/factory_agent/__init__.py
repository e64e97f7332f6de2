"""The factory agent: runs at a microfactory, pulls print jobs from the factory API, prints them on a print
host (OctoPrint, or a simulated one) and reports back.

It talks HTTP only (httpx + the pydantic models of ``services.printing.schemas``): no FastAPI, database or
queue code is imported here, so it runs on a small machine beside the printers.
"""
