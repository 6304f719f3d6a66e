def bitcount(n):
    """Number of 1 bits in the binary form of a non-negative integer."""
    count = 0
    while n:
        n &= n - 1
        count += 1
    return count
