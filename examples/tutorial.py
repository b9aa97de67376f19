"""The SciPy hierarchical clustering tutorial, reproduced with gpu_hclust.

Rebuilds the tutorial's data (np.random.seed(4711): two Gaussian blobs of 100
and 50 points, then the variant with three wider blobs), walks through every
step with ``import gpu_hclust as hierarchy``, prints the numbers the tutorial
publishes and writes its figures (full, truncated and annotated dendrograms,
cut lines, elbow plots, scatter plots) as PNG files::

    python examples/tutorial.py                 # figures into ./figures
    python examples/tutorial.py --out /tmp/figs --backend cpu

The walk-through itself is ``gpu_hclust._demo.run_demo`` (also behind the
``gpu-hclust demo`` command); this script only parses the command line.
"""

import argparse

from gpu_hclust._demo import run_demo


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The SciPy hierarchical clustering tutorial with gpu_hclust: "
                    "prints its numbers and writes its figures.")
    parser.add_argument("--out", default="figures", metavar="DIR",
                        help="folder for the PNG figures (default: ./figures)")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where linkage runs (default: auto)")
    args = parser.parse_args(argv)
    run_demo(args.out, backend=None if args.backend == "auto" else args.backend, echo=print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
