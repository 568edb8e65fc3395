"""Cross-tuning (Algorithm 1): odd epochs plain, even epochs AD-DROP."""
import pytest

from addrop_fairseq.core.schedule import addrop_active


def test_cross_alternates_epochs_starting_plain():
    assert [addrop_active("cross", epoch, 0) for epoch in range(1, 7)] == \
        [False, True, False, True, False, True]


def test_cross_ignores_the_update_number_within_an_epoch():
    assert {addrop_active("cross", 2, n) for n in range(0, 5000, 37)} == {True}


def test_updates_schedule_alternates_blocks():
    phases = [addrop_active("updates", 1, n, every=3) for n in range(12)]
    assert phases == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3


def test_always_and_off():
    assert all(addrop_active("always", e, n) for e in (1, 2) for n in (0, 9))
    assert not any(addrop_active("off", e, n) for e in (1, 2) for n in (0, 9))


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="'sometimes'"):
        addrop_active("sometimes", 1, 0)
