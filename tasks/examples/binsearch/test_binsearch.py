import signal

import pytest

from binsearch import find


def _too_slow(signum, frame):
    raise TimeoutError("took more than 2 s: an endless loop?")


@pytest.fixture(autouse=True)
def _limit():
    signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(2)
    yield
    signal.alarm(0)


def test_middle():
    assert find([1, 3, 5, 7, 9], 5) == 2


def test_first_and_last():
    assert find([1, 3, 5, 7, 9], 1) == 0
    assert find([1, 3, 5, 7, 9], 9) == 4


def test_missing():
    assert find([1, 3, 5], 4) == -1


def test_empty():
    assert find([], 1) == -1


def test_every_element():
    items = list(range(0, 200, 2))
    assert all(find(items, x) == i for i, x in enumerate(items))


def test_right_of_everything():
    assert find([1, 2, 3], 10) == -1
