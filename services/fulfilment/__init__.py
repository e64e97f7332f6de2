"""Fulfilment: the processes that move an order across its owners.

Orders, routing, printing and shipping each own their rows; what crosses them lives here. A site's agents
claim print jobs under leases (``leases``, ``repository``); an order follows its print job by one rule
(``follow``); a print job's preparation step and the courier booking step run as units of work
(``unit_of_work``, ``booking``), which take their locks in the one order ``unit_of_work`` writes down; an
order's timeline merges what each owner recorded (``timeline``).
"""
