"""Argument annotations, where Prefect keeps them: `from flows_tui.utilities.annotations import quote`."""

from ..futures import allow_failure, opaque, quote, unmapped

__all__ = ["allow_failure", "opaque", "quote", "unmapped"]
