"""An OME-TIFF's physical pixel sizes and time step (its OME-XML ``Pixels`` attributes), as the
metadata ``physical_sizes`` the pyramid writer turns into OME-Zarr axis units and scales
(anisotropic voxels were drawn as cubes: the scales were pixel factors alone)."""

from __future__ import annotations

import math
from typing import Any
from xml.etree import ElementTree

#: OME's unit symbols → the UDUNITS-2 names OME-Zarr axes take.
UNITS = {"Å": "angstrom", "pm": "picometer", "nm": "nanometer", "µm": "micrometer", "um": "micrometer", "mm": "millimeter",
         "cm": "centimeter", "m": "meter", "km": "kilometer", "ps": "picosecond", "ns": "nanosecond", "µs": "microsecond",
         "us": "microsecond", "ms": "millisecond", "s": "second", "min": "minute", "h": "hour", "d": "day"}
#: (OME attribute, its unit attribute, OME's default unit) per axis letter.
_SIZES = {"X": ("PhysicalSizeX", "PhysicalSizeXUnit", "µm"), "Y": ("PhysicalSizeY", "PhysicalSizeYUnit", "µm"),
          "Z": ("PhysicalSizeZ", "PhysicalSizeZUnit", "µm"), "T": ("TimeIncrement", "TimeIncrementUnit", "s")}


def physical_sizes(ome_xml: str | None, axes: str, dims: list[str]) -> dict[str, dict[str, Any]]:
    """Per dimension name (``dims``, one per letter of tifffile's ``axes``): ``{"size", "unit"}``
    of the first image's pixels, where the OME-XML states a positive size in a unit OME-Zarr
    knows; nothing when it states none or cannot be read."""
    if not ome_xml:
        return {}
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        return {}
    pixels = next((e for e in root.iter() if e.tag.rpartition("}")[2] == "Pixels"), None)
    if pixels is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for letter, dim in zip(axes, dims):
        if letter not in _SIZES:
            continue
        name, unit_name, default = _SIZES[letter]
        try:
            size = float(pixels.get(name, ""))
        except ValueError:
            continue
        unit = UNITS.get(pixels.get(unit_name, default))
        if unit is not None and math.isfinite(size) and size > 0:
            out[dim] = {"size": size, "unit": unit}
    return out
