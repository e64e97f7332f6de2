"""SLA routing: which microfactory prints a part, on which printer, and when it is delivered.

Pure (no I/O, no clock): ``calendars`` (opening hours, courier cut-offs), ``transit`` (courier levels),
``sites`` and ``demand`` (what routing is asked about), ``quotes`` (what it answers), ``slots`` (printer
start and pickup times), ``candidates`` (what one site can offer), ``search`` (``route`` and ``SiteIndex``),
``geo`` and ``optimizer`` (batch re-assignment). With I/O: ``repository`` and ``snapshot``.
"""
