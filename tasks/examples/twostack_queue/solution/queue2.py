class Queue:
    """A FIFO queue made of two stacks."""

    def __init__(self):
        self._in = []
        self._out = []

    def push(self, item):
        self._in.append(item)

    def _shift(self):
        if not self._out:
            while self._in:
                self._out.append(self._in.pop())

    def pop(self):
        self._shift()
        if not self._out:
            raise IndexError("pop from an empty queue")
        return self._out.pop()

    def peek(self):
        self._shift()
        if not self._out:
            raise IndexError("peek at an empty queue")
        return self._out[-1]

    def __len__(self):
        return len(self._in) + len(self._out)

    def __bool__(self):
        return len(self) > 0
