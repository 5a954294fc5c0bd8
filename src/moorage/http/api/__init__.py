"""The REST API under ``/api/v1``: Quay's paths and JSON shapes over the same access seam,
route table and error table as the registry API; its OpenAPI document is built from the
route table (``openapi.py``)."""
