"""bench-core: every tracker on the 1 TiB reference set, measured and modeled,
the emulations beside their ``@kernel`` twins on the kernel's own code.

One room per idea (the command's description is cli.py's docstring):

* ``cli.py``          the command line: options, the runs, the printed tables
* ``tables.py``       the table formatting: "median (min\u2013max)", bytes in MiB
* ``rows.py``         which rows: emulations and twins, engine labels, ratios
* ``timing.py``       samples and their spread; each measurement a Dask task
* ``measure.py``      the reference set measured: populate, scans, estimate(),
                      the kvm store loop
* ``maple_order.py``  the maple order study on the kernel's own tree
* ``conversion.py``   the cost of one conversion
* ``sharded.py``      a --pfns built shard by shard
"""
