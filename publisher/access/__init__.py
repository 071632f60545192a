"""Read published data back (for the handlers): arrays from our Zarr, tables from our Parquet.

Lean on purpose: numpy and numcodecs for arrays, pyarrow for tables, imported on first use,
so a Lambda that serves only metadata never pays for them.
"""
