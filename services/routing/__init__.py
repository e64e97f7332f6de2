"""SLA routing: which microfactory prints a part, on which printer, and when it is delivered."""
