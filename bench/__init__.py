"""Benchmark: Moorage against the reference registry (CNCF Distribution) on loopback."""
