"""Benchmarks: python -m bench.service, bench.bulk_upload, bench.uploads, bench.inproc."""
