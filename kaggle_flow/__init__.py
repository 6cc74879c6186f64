"""flow: an image-classification competition from raw files to a checked submission."""

__version__ = "0.1.0"

import os
import warnings

from kaggle_flow import machine  # noqa: F401  (reads OMP_NUM_THREADS before paddle's import overwrites it)

# albumentations asks PyPI for a newer version on every import (a warning line when offline, a request
# when online); flow pins the version it runs with.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# paddle warns about a C++ build cache on import; flow compiles nothing.
warnings.filterwarnings("ignore", message="No ccache found")
