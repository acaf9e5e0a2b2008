"""likra.nat.tasks: problems of every task."""

from __future__ import annotations

import pytest

from likra.errors import LikraError
from likra.nat.tasks import load_problems


def test_problems_of_every_task_load(data_dir):
    gsm = load_problems("gsm8k", "test", data_dir)
    assert len(gsm) == 1319 and gsm[0].answer == "18"
    assert load_problems("svamp", None, data_dir)[0].answer == "51"
    assert load_problems("multiarith", None, data_dir)[0].answer == "39"
    assert load_problems("asdiv", None, data_dir)[0].answer == "9"
    assert {p.answer for p in load_problems("strategyqa", "test", data_dir)} == {"yes", "no"}
    hotpot = load_problems("hotpotqa", "dev", data_dir)
    assert len(hotpot) == 500 and hotpot[0].answer == "Richard Strauss"
    with pytest.raises(LikraError, match="--split dev: task gsm8k has splits train, test"):
        load_problems("gsm8k", "dev", data_dir)
