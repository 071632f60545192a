"""Tiled's query language as a registry of query classes (``filter[NAME][condition][FIELD]=...``).

* :mod:`.base`: the :class:`~.base.Query` contract and the ``register`` decorator;
* :mod:`.sqlite`: how SQLite (Tiled's SQL catalog) sees a metadata value, shared by every query;
* :mod:`.regex`: user patterns as RE2 programs (linear time);
* :mod:`.compare`, :mod:`.text`, :mod:`.fields`: the built-in queries, one class each;
* :mod:`.registry`: the registry filled (built-ins, then the ``skyshelf.queries`` entry points)
  and :func:`~.registry.filters_from`, which parses a request's parameters into queries.

Nothing here imports numpy: a query evaluated on search columns imports it then.
"""
