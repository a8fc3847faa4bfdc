"""Published weights: recognise an official release file and turn it into an rgbt-bench checkpoint.

`IMPORTERS` maps a registered model name to its importer ("module:attribute" of a `found.Importer`,
imported on use); `import_weights` (rgbt_bench.models.published.importer) runs one import and is what
`rgbt-bench models import` calls. Supported files, where to get them and what was verified:
docs/published-weights.md.
"""
from __future__ import annotations

IMPORTERS: dict[str, str] = {
    "crm": "rgbt_bench.models.published.crm:IMPORTER",
    "rtfnet": "rgbt_bench.models.published.rtfnet:IMPORTER",
    "mfnet": "rgbt_bench.models.published.mfnet:IMPORTER",
}

__all__ = ["IMPORTERS"]
