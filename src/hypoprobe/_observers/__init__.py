"""Per-request extras fed by the request scope's end: exemplars and span annotation
(``_exemplars``), the slowest requests (``_slowest``). Recording never depends on them.
"""
