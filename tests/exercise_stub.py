"""What the student version of every exercise is (``scripts.release`` writes it), for the
checker tests: each checker must fail it with "not implemented yet"."""


def stub(*args, **kwargs):
    """``# YOUR CODE HERE`` + ``raise NotImplementedError()``, for any signature."""
    raise NotImplementedError()
