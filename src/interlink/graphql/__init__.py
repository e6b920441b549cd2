"""GraphQL in the platform's UI API shape, above the SOQL engine and the write path, below the API layer.

``run(org, context, query, variables, operation_name)`` answers ``{"data": ..., "errors": [...]}``.
"""

from interlink.graphql.execute import run

__all__ = ["run"]
