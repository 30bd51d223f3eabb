"""The helpers Prefect's tests import from `prefect.testing.utilities`, for the ported tests."""

from __future__ import annotations


def exceptions_equal(a: BaseException, b: BaseException) -> bool:
    """Prefect's: exceptions compare equal by type and args (they may have travelled pickled)."""
    if a == b:
        return True
    return type(a) is type(b) and getattr(a, "args", None) == getattr(b, "args", None)
