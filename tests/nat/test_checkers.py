"""likra.nat.checkers: answers checked per task."""

from __future__ import annotations

import pytest

from likra.nat.checkers import check, check_f1, check_numeric, check_yes_no, to_number


def test_checkers():
    assert to_number("$1,234.50") == 1234.5 and to_number("3/4") == 0.75 and to_number("none") is None
    assert check_numeric("18 dollars", "18").correct and check_numeric("18.0", "18").correct
    assert not check_numeric("17", "18").correct and not check_numeric(None, "18").correct
    assert check_yes_no("Yes, because ice is cold.", "yes").correct and check_yes_no("False", "no").correct
    assert not check_yes_no("Unclear", "yes").correct and not check_yes_no("no", "yes").correct
    assert check_f1("The Richard Strauss", "Richard Strauss") == check("f1", "richard strauss.", "Richard Strauss")
    partial = check_f1("Strauss", "Richard Strauss")
    assert not partial.correct and partial.score == pytest.approx(2 / 3)
    assert check_f1("no", "yes").score == 0.0
