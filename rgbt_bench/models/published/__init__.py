"""Published weights: recognise an official release file and turn it into an rgbt-bench checkpoint.

Each model's importer is named by the `importer` field of its registry entry (rgbt_bench.models.registry);
`import_weights` (rgbt_bench.models.published.importer) runs one import and is what
`rgbt-bench models import` calls. Supported files, where to get them and what was verified:
docs/published-weights.md.
"""
