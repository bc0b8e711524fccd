"""parafetch: fetch many URLs at once from one thread (the Rust heir of ParallelCurl)."""

from parafetch._native import __version__

__all__ = ["__version__"]
