"""The OData producer: exposed objects as OData 4.0 (``/odata/v4/``) and OData 2.0 (``/odata/v2/``) services.

``metadata/odata.yaml`` (config.py) says which objects are exposed and which are writable; model.py derives
the entity data model from the schema; csdl.py writes ``$metadata``; filter.lark and filter.py parse
``$filter``/``$orderby`` and translate them to SOQL; options.py turns the other query options into the rest
of the SOQL; render.py writes OData JSON; service.py is the HTTP surface. See docs/odata.md.
"""

from interlink.api.odata.service import ODataService, routes

__all__ = ["ODataService", "routes"]
