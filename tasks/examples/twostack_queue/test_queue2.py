import pytest

from queue2 import Queue


def test_fifo_order():
    q = Queue()
    for i in range(5):
        q.push(i)
    assert [q.pop() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_interleaved():
    q = Queue()
    q.push(1)
    q.push(2)
    assert q.pop() == 1
    q.push(3)
    assert q.pop() == 2
    assert q.pop() == 3


def test_peek_does_not_remove():
    q = Queue()
    q.push("a")
    assert q.peek() == "a"
    assert q.pop() == "a"


def test_len():
    q = Queue()
    assert len(q) == 0
    q.push(1)
    q.push(2)
    q.pop()
    assert len(q) == 1


def test_bool():
    q = Queue()
    assert not q
    q.push(0)
    assert q


def test_pop_empty():
    with pytest.raises(IndexError):
        Queue().pop()


def test_peek_empty():
    with pytest.raises(IndexError):
        Queue().peek()


def test_many():
    q = Queue()
    for i in range(1000):
        q.push(i)
        if i % 3 == 0:
            q.pop()
    assert len(q) == 1000 - 334
