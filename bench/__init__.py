"""Benchmarks, run by hand: ``python -m bench.<area>.<name> --help`` from the repository root.

They print figures; none of them asserts a speed. ``bench/README.md`` lists each one with its
purpose and command, and ``bench.harness`` holds what they share.
"""
