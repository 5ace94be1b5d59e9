"""bnnames: character-level language models of names with Batch Normalization.

Importing the package is cheap on purpose: torch is imported only by the modules that
compute, so `bnnames --help` answers instantly.
"""

__version__ = "0.1.0"
