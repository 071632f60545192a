"""Writers: structures → Zarr (arrays, groups) and Parquet (tables)."""
