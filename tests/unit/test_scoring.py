"""The matrix's score: first answers only; a second answer shown apart, never counted (issue 29)."""
import pytest

from labkit.analyze.scoring import mark, right, score, stripped


def test_only_first_answers_count_and_seconds_are_listed_apart():
    s = score(["first", "second", "", "first"], ["a", "b", "c", "d"])
    assert (s.right, s.cases, s.second, s.wrong) == (2, 4, ("b",), ("c",))
    assert s.pct == 50
    assert s.text() == ("accuracy 50% (2/4 cases, first answers; target 100%); 1 more named the truth as the "
                        "second answer only, not counted: b")
    assert [mark(a) for a in ("first", "second", "")] == ["ok", "2nd", "WRONG"]
    assert not right("second") and right("first")


def test_an_unknown_answer_is_an_error():
    with pytest.raises(ValueError, match="answer 'yes'"):
        score(["yes"])


def test_numbers_stripped():
    assert stripped("nginx gets 329 MB/s, 2.5 CPU-s per GB, 1,024 x") == "nginx gets # MB/s, # CPU-s per GB, # x"
