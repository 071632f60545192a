"""``select_metadata``: a JMESPath expression applied to each result's metadata (as Tiled does)."""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest
from ..queries.regex import shown


class Selection:
    """A compiled ``select_metadata``. A malformed expression, or one that fails on some metadata
    (``abs(@)`` on an object), is the client's mistake: a 400 naming it."""

    def __init__(self, expression: str) -> None:
        import jmespath

        self.expression = expression
        try:
            self.compiled = jmespath.compile(expression)
        except RecursionError:
            raise BadRequest(f"select_metadata {shown(expression)} is nested too deeply") from None
        except Exception as exc:  # JMESPath's parse errors, and what its lexer lets through
            raise BadRequest(f"malformed select_metadata {shown(expression)}: {exc}") from None

    def search(self, metadata: dict[str, Any]) -> Any:
        try:
            return self.compiled.search(metadata)
        except RecursionError:
            raise BadRequest(f"select_metadata {shown(self.expression)} is nested too deeply") from None
        except Exception as exc:  # JMESPath's type and arity errors
            raise BadRequest(f"select_metadata {shown(self.expression)} fails on a result's metadata: {exc}") from None
