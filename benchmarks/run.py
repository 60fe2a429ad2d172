"""Run the ppl-kernels benchmark from a checkout: ``python benchmarks/run.py [--quick] ...``.

Same as ``ppl-kernels bench``; see ``ppl_kernels/bench.py`` for what is measured.
"""

import sys

from ppl_kernels.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
