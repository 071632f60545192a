"""The metadata index: one entry per node, written at publish time, read by the handlers and by
:func:`publisher.index.client.search_index` with no server.

* :mod:`.layout`: where everything is (keys and paths) and the index's columns;
* :class:`publisher.formats.Entry`: one node's entry (a published format);
* :mod:`.write`: the Parquet and JSON forms; :mod:`.columns_write`: a large container's search columns;
* :mod:`.columns_read`: those columns read back, a column at a time;
* :mod:`.rows` and :mod:`.engine`: queries (:mod:`publisher.queries`) answered row by row and on columns;
* :mod:`.strategy`: which of those a search takes; :mod:`.selection`: ``select_metadata``;
* :mod:`.client`: the server-free search.

Nothing is imported here, so a handler loads only the modules it uses.
"""
