"""Reference providers and deliberately broken variants of them, for testing the
conformance suites of :mod:`memsift.testing` (see ``tests/test_conformance_catches.py``).

Each broken provider is a small subclass of a correct reference provider that breaks one
rule of its kind's contract; the suite of that kind must fail it.
"""
