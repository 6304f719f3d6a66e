import pytest

from roman import to_roman


@pytest.mark.parametrize(
    "n, expected",
    [(1, "I"), (3, "III"), (8, "VIII"), (2000, "MM")],
)
def test_additive(n, expected):
    assert to_roman(n) == expected


@pytest.mark.parametrize(
    "n, expected",
    [(4, "IV"), (9, "IX"), (40, "XL"), (90, "XC"), (400, "CD"), (1994, "MCMXCIV"), (3999, "MMMCMXCIX")],
)
def test_subtractive(n, expected):
    assert to_roman(n) == expected


def test_range():
    with pytest.raises(ValueError):
        to_roman(0)
    with pytest.raises(ValueError):
        to_roman(4000)
