"""Exercise checkers: one module per chapter (``ch02.py`` ...), built on :mod:`.core`.

Every checker takes the student's function (or value), passes the reference answer,
fails the ``NotImplementedError`` stub, and fails plausible wrong answers with a
message that says what is wrong. ``tests/test_checkers_*.py`` prove all three.
"""
from .core import ExerciseError, check_close, passed, run_student, use_yours

__all__ = ["ExerciseError", "check_close", "passed", "run_student", "use_yours"]
