"""``python -m gpu_hclust``: the same as the ``gpu-hclust`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
