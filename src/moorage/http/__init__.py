"""The HTTP layer: routes, one error table, request context. Never touches SQL or storage keys."""
