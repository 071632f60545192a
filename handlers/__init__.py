"""AWS Lambda handlers serving the published catalog (Tiled's HTTP API); built by the serve issue.

Handlers import only ``publisher.structures``, ``publisher.catalog`` and the serializers they
need, never h5py, pandas or xarray.
"""
