import re
from collections import Counter


def top_words(text, k):
    counts = Counter(re.findall(r"[a-z0-9']+", text.lower()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:k]
