"""Modules for tests/test_load.py to probe by import path; each is imported by one test only.

Nothing imports them at collection time: the tests check that configuration loaded
*before* a module's first import still probes it.
"""
