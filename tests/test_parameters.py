"""Flow parameters converted against type hints, with one clear message for a bad value."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Literal, Optional

import pytest

from flows_tui.errors import ParameterError
from flows_tui.parameters import describe_parameters, parse_assignments, validate_parameters


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def target(n: int, ratio: float = 0.5, flag: bool = False, day: dt.date = dt.date(2024, 1, 1),
           items: list[int] = [], mode: Literal["a", "b"] = "a", colour: Colour = Colour.RED,
           label: str = "x", limit: Optional[int] = None):
    pass


def check(values, text=True):
    return validate_parameters(target, values, flow_name="target", from_text=text)


def test_text_values_are_converted_per_type_and_defaults_filled():
    result = check({"n": "3", "ratio": "2.5", "flag": "yes", "day": "2024-02-29", "items": "[1, 2]", "mode": "b",
                    "colour": "BLUE", "label": "007", "limit": "none"})
    assert result == {"n": 3, "ratio": 2.5, "flag": True, "day": dt.date(2024, 2, 29), "items": [1, 2],
                      "mode": "b", "colour": Colour.BLUE, "label": "007", "limit": None}


def test_python_values_are_validated_as_they_are():
    assert check({"n": 4, "colour": "blue"}, text=False)["colour"] is Colour.BLUE
    with pytest.raises(ParameterError, match="expected an integer, got 4.5"):
        check({"n": 4.5}, text=False)


@pytest.mark.parametrize("values, message", [
    ({"n": "ten"}, "parameter 'n': expected an integer, got 'ten'"),
    ({"n": "1", "day": "2024-13-01"}, "expected a date (YYYY-MM-DD), got '2024-13-01'"),
    ({"n": "1", "mode": "c"}, "expected one of 'a', 'b', got 'c'"),
    ({"n": "1", "items": "[1,"}, "expected JSON for list[int], got '[1,'"),
    ({"n": "1", "flag": "maybe"}, "expected a boolean (true/false), got 'maybe'"),
])
def test_a_bad_value_says_what_was_given_and_what_is_accepted(values, message):
    with pytest.raises(ParameterError) as error:
        check(values)
    assert message in str(error.value) and "flow 'target'" in str(error.value)


def test_an_unknown_name_suggests_the_closest():
    with pytest.raises(ParameterError) as error:
        check({"n": "1", "ration": "2"})
    assert "unknown parameter" in str(error.value) and "'ratio'" in str(error.value)


def test_a_missing_required_parameter_is_named():
    with pytest.raises(ParameterError, match="'n': missing required parameter of type int"):
        check({})


def test_several_problems_are_reported_together():
    with pytest.raises(ParameterError) as error:
        check({"n": "x", "mode": "z"})
    assert "'n'" in str(error.value) and "'mode'" in str(error.value)


def test_assignments_need_an_equals_sign():
    assert parse_assignments(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(ParameterError, match="expected NAME=VALUE"):
        parse_assignments(["oops"])


def test_describe_gives_readable_types_for_a_form():
    described = {d["name"]: d for d in describe_parameters(target)}
    assert described["n"]["required"] and described["items"]["type"] == "list[int]"
    assert described["mode"]["type"] == "Literal['a', 'b']"
