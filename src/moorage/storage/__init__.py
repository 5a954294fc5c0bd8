"""Blob storage: bytes by key, unaware of repositories."""
