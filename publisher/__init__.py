"""Skyshelf publisher: turn scientific source trees into Zarr + Parquet + a metadata index.

Data flows one way: sources → readers → structures → writers → store + index.
"""

__version__ = "0.1.0"
