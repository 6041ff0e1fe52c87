"""Applications probed by tests/test_run.py through ``hypoprobe run`` only.

None of them imports hypoprobe: they stand for code the performance team does not own.
"""
