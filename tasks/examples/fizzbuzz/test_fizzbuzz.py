from fizzbuzz import fizzbuzz


def test_length():
    assert len(fizzbuzz(20)) == 20


def test_small():
    assert fizzbuzz(2) == ["1", "2"]


def test_fizz_and_buzz():
    out = fizzbuzz(10)
    assert out[2] == "Fizz"
    assert out[4] == "Buzz"


def test_fizzbuzz_word():
    assert fizzbuzz(15)[14] == "FizzBuzz"


def test_empty():
    assert fizzbuzz(0) == []
