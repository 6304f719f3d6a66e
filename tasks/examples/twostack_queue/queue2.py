class Queue:
    """A FIFO queue made of two stacks."""

    def __init__(self):
        self._in = []
        self._out = []

    def push(self, item):
        self._in.append(item)

    def pop(self):
        raise NotImplementedError

    def peek(self):
        raise NotImplementedError
