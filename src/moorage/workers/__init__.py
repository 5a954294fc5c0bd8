"""Background jobs: small functions over services, run by one loop."""
