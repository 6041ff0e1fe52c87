"""The exception tree of hypoprobe.

Every error hypoprobe raises on purpose derives from :class:`HypoprobeError`. Errors are
raised at configuration time only (decoration, hypothesis registration, ``configure()``,
CLI arguments); a probe never raises on its own account while the application runs.

Example::

    import hypoprobe

    try:
        hypoprobe.hypothesis("not an id", claim="...", endpoint="GET /x", min_share=0.5)
    except hypoprobe.ConfigurationError as exc:
        print(exc)
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "HypoprobeError", "SnapshotError"]


class HypoprobeError(Exception):
    """Base class of every error hypoprobe raises on purpose.

    Example::

        try:
            hypoprobe.Snapshot.from_json("{}")
        except hypoprobe.HypoprobeError:
            ...
    """


class ConfigurationError(HypoprobeError, ValueError):
    """A hypothesis, probe, scope or setting is misconfigured.

    It is also a :class:`ValueError`, so code that guards configuration with
    ``except ValueError`` keeps working.

    Example::

        try:
            hypoprobe.hypothesis("PERF-1", claim="c", endpoint="GET /", min_share=2.0)
        except hypoprobe.ConfigurationError as exc:
            assert "min_share" in str(exc)
    """


class SnapshotError(HypoprobeError, ValueError):
    """A snapshot document is empty, corrupt, or of an unsupported schema version.

    Example::

        try:
            hypoprobe.Snapshot.from_json("not json")
        except hypoprobe.SnapshotError as exc:
            print(exc)
    """
