"""The command line's former module: ``gpu_hclust._cli:main`` is the console
script of installations made before it moved to :mod:`gpu_hclust.cli`."""

from .cli import build_parser, main

__all__ = ["main", "build_parser"]
