"""Exact queries: every latent site summed out by variable elimination.

    >>> from inference.exact import enumerate_program
"""

from .elimination import NotEnumerableError
from .queries import EnumeratedPosterior, enumerate_program

__all__ = ["EnumeratedPosterior", "NotEnumerableError", "enumerate_program"]
