import signal

import pytest

from bitcount import bitcount


def _too_slow(signum, frame):
    raise TimeoutError("took more than 2 s: an endless loop?")


@pytest.fixture(autouse=True)
def _limit():
    signal.signal(signal.SIGALRM, _too_slow)
    # A wrong loop can spin forever; fail that test fast instead.
    signal.alarm(2)
    yield
    signal.alarm(0)


def test_zero():
    assert bitcount(0) == 0


def test_powers_of_two():
    assert [bitcount(1 << k) for k in range(10)] == [1] * 10


def test_mixed():
    assert bitcount(127) == 7
    assert bitcount(128) == 1
    assert bitcount(255) == 8


def test_large():
    assert bitcount(2**64 - 1) == 64
