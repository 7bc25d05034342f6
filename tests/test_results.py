"""``Results`` in Python: a misspelled summary figure suggests the right name, and ``save`` says
when a file stands where the results folder (or a folder above it) must be."""
from __future__ import annotations

import pytest

import kinesim
from tests.test_validation_limits import TINY


@pytest.fixture(scope="module")
def results():
    return kinesim.simulate(TINY)


def test_a_summary_figure_by_name(results):
    assert results["throttle_rate"] == results.summary_dict["throttle_rate"]


@pytest.mark.parametrize("key, words", [
    ("throtle_rate", "'throtle_rate': no such summary figure (did you mean throttle_rate?)"),
    ("consumers.dashbord.records_processed", "(did you mean consumers.dashboard.records_processed?)"),
    ("zzzz", "no such summary figure; known: "),
])
def test_an_unknown_summary_figure_suggests_close_matches(results, key, words):
    with pytest.raises(KeyError) as exc:
        results[key]
    assert words in exc.value.args[0]


def test_save_below_a_file_says_it_is_not_a_folder(results, tmp_path):
    (tmp_path / "x").write_text("a file")
    with pytest.raises(OSError, match=r"cannot be created: .*x is a file, not a folder"):
        results.save(tmp_path / "x" / "sub")
    assert (tmp_path / "x").read_text() == "a file"
