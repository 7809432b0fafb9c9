"""Benchmarks: floorchannels against raw Channels and a bare ASGI "limit" app, in one run.

``python -m bench.run`` (``make bench``) is the quick mode; ``--full`` sweeps clients and
group sizes and writes docs/benchmarks.md. See docs/benchmarks.md for what is measured.
"""
