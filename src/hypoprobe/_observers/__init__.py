"""Per-request extras fed by the request scope's end: exemplars and span annotation
(``_exemplars``), the slowest requests (``_slowest``), the customers a request served
(``_customers``, behind ``hypoprobe.customer()``). Recording never depends on them.
"""
