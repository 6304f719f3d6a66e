import pytest

from lru import LRUCache


def test_get_missing():
    assert LRUCache(2).get("x") is None


def test_put_get():
    c = LRUCache(2)
    c.put("a", 1)
    assert c.get("a") == 1


def test_eviction():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.put("c", 3)
    assert c.get("a") is None
    assert c.get("c") == 3


def test_get_counts_as_use():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.get("a")
    c.put("c", 3)
    assert c.get("a") == 1
    assert c.get("b") is None


def test_update_existing_key():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("a", 5)
    assert c.get("a") == 5
    assert len(c) == 1


def test_len_bounded():
    c = LRUCache(3)
    for i in range(10):
        c.put(i, i)
    assert len(c) == 3


def test_update_refreshes_recency():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.put("a", 3)
    c.put("c", 4)
    assert c.get("b") is None
    assert c.get("a") == 3


def test_bad_capacity():
    with pytest.raises(ValueError):
        LRUCache(0)
