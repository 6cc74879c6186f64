"""flow: an image-classification competition from raw files to a checked submission."""

__version__ = "0.1.0"

import warnings

# paddle warns about a C++ build cache on import; flow compiles nothing.
warnings.filterwarnings("ignore", message="No ccache found")
