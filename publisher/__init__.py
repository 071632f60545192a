"""Skyshelf publisher: turn scientific source trees into Zarr + Parquet + a metadata index.

Data flows one way: sources → readers → structures → writers → store + index.
"""

import os

__version__ = "0.1.0"

# HDF5 looks for a dataset's external raw storage of relative names in the process's current
# folder unless this is set when it loads (read once, at h5py's import): beside the file instead,
# as for external links and virtual datasets, so a build reads the same bytes wherever it is run
# from (publisher/readers/hdf5_sources.py refuses such storage when HDF5 loaded without it).
os.environ.setdefault("HDF5_EXTFILE_PREFIX", "${ORIGIN}")
