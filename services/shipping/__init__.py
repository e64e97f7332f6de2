"""Shipping: book a courier when a part is printed, and follow the parcel to the customer's door."""
