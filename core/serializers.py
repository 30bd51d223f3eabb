"""How a task's cached result is written: Prefect 3's `result_serializer` names and classes.

`@task(result_serializer="json")` (or "pickle", "compressed/pickle", "compressed/json", or an
instance of a class here, or any object with `dumps(value) -> bytes` and `loads(bytes)`)
chooses the format of the task's entries in the cache. A result the serializer cannot write
is not cached, with a warning; the task run itself completes. The default is cloudpickle.
"""

from __future__ import annotations

import json
import lzma
from typing import Any

import cloudpickle


class Serializer:
    """A result format: `dumps(value) -> bytes`, `loads(bytes) -> value`; `type` names it in the cache."""

    type = "custom"

    def dumps(self, value: Any) -> bytes:
        raise NotImplementedError

    def loads(self, blob: bytes) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleSerializer(Serializer):
    """cloudpickle (Prefect's "pickle"): any value cloudpickle can write, functions and classes too."""

    type = "pickle"

    def dumps(self, value: Any) -> bytes:
        return cloudpickle.dumps(value, protocol=5)

    def loads(self, blob: bytes) -> Any:
        return cloudpickle.loads(blob)


class JSONSerializer(Serializer):
    """JSON text: readable by other tools; only what JSON holds (dicts, lists, text, numbers, bools, None)."""

    type = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            return json.dumps(value).encode()
        except (TypeError, ValueError) as error:
            raise TypeError(f"JSON cannot hold the result: {error}") from None

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob)


class CompressedSerializer(Serializer):
    """Another serializer's bytes, compressed with lzma (Prefect's "compressed/pickle", "compressed/json")."""

    def __init__(self, serializer: Serializer | str = "pickle") -> None:
        self.serializer = resolve(serializer)

    @property
    def type(self) -> str:  # type: ignore[override]
        return f"compressed/{self.serializer.type}"

    def dumps(self, value: Any) -> bytes:
        return lzma.compress(self.serializer.dumps(value))

    def loads(self, blob: bytes) -> Any:
        return self.serializer.loads(lzma.decompress(blob))


NAMES = ("pickle", "json", "compressed/pickle", "compressed/json")


def resolve(given: Any) -> Serializer:
    """The serializer `result_serializer=given` asks for; ValueError naming the choices otherwise."""
    if given is None or given == "pickle" or given == "cloudpickle":
        return PickleSerializer()
    if given == "json":
        return JSONSerializer()
    if isinstance(given, str) and given.startswith("compressed/") and given != "compressed/custom":
        return CompressedSerializer(given.split("/", 1)[1])
    if isinstance(given, Serializer) or (callable(getattr(given, "dumps", None))
                                         and callable(getattr(given, "loads", None))):
        return given
    raise ValueError(f"result_serializer must be one of {', '.join(map(repr, NAMES))} or an object with "
                     f"dumps() and loads(), got {given!r}")


def by_type(name: str | None, given: Any) -> Serializer:
    """The serializer an entry written as `name` is read with; a custom one is the task's own (`given`)."""
    if name is None:
        return PickleSerializer()
    if name in NAMES:
        return resolve(name)
    return resolve(given)


__all__ = ["CompressedSerializer", "JSONSerializer", "PickleSerializer", "Serializer"]
