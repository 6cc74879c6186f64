"""flow: an image-classification competition from raw files to a checked submission."""

__version__ = "0.1.0"

import warnings

from kaggle_flow import machine  # noqa: F401  (reads OMP_NUM_THREADS before paddle's import overwrites it)

# paddle warns about a C++ build cache on import; flow compiles nothing.
warnings.filterwarnings("ignore", message="No ccache found")
