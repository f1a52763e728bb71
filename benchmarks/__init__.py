"""Benchmarks that print figures against targets: `python -m benchmarks.run [--quick]`.

Timing targets live here, not in asserting tests (DESIGN, Testing).
"""
