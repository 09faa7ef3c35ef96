"""The ticket-sales app of the seed, as a Django app."""
