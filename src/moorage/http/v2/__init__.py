"""Endpoints of the OCI Distribution / Docker Registry V2 API, one module per resource."""
