"""The write side: everything a request touches.

The probe (the hot path, ``_probe``), the request scope and its one end-of-request pass
(``_scope``), plans resolved off the hot path (``_plan``), the storage and its
multi-process files (``_storage``, ``_multiproc``), bucket layouts (``_buckets``),
hypotheses and probe targets (``_hypothesis``, ``_targets``), counted faults (``_faults``),
the clocks (``_clock``) and the one owner of process state (``_state``: one fork hook, one
reset). Nothing here imports the read side (collection, exporters, analysis, renderers).
"""

# Every plan built gets its compiled request end: the compiler is in place before any can be.
from . import _request_end  # noqa: F401
