from wordfreq import top_words


def test_simple():
    assert top_words("a b a", 1) == [("a", 2)]


def test_case_insensitive():
    assert top_words("The the THE cat", 1) == [("the", 3)]


def test_punctuation():
    assert top_words("stop. stop, stop!", 1) == [("stop", 3)]


def test_ties_alphabetical():
    assert top_words("b a c", 2) == [("a", 1), ("b", 1)]


def test_k_larger_than_vocabulary():
    assert top_words("x y", 5) == [("x", 1), ("y", 1)]


def test_empty():
    assert top_words("", 3) == []
