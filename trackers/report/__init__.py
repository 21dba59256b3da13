"""The design-review report: every tracker and kexec strategy, tables and figures.

``tdx-trackers report`` (cli.py) runs the default scenario set,
prints the verdict table and writes figures (PNG, SVG), CSV tables and
``summary.md``.  ``sets.py`` names the set shapes and host sizes the report
and the asv suite (benchmarks/) share.
"""
