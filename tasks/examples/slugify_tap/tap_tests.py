"""Tests that speak TAP (Test Anything Protocol) instead of a framework's own output."""
import traceback

from slug import slugify

CASES = [
    ("Hello World", "hello-world"),
    ("already-a-slug", "already-a-slug"),
    ("  spaced  out  ", "spaced-out"),
    ("Rust & Python!", "rust-python"),
    ("C++ -- the good parts", "c-the-good-parts"),
    ("MiXeD 42 Case", "mixed-42-case"),
]

print(f"1..{len(CASES)}")
for i, (title, expected) in enumerate(CASES, start=1):
    try:
        got = slugify(title)
        ok = got == expected
    except Exception:  # a crash is a failed test, not a crashed run
        got, ok = traceback.format_exc(limit=1), False
    print(f"{'ok' if ok else 'not ok'} {i} - slugify({title!r})")
    if not ok:
        print(f"#   expected {expected!r}, got {got!r}")
