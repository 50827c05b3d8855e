"""The egress proxy bench: ``run.py`` (the command) and the modules it uses.

- ``servers``: certificates, the partner, the mutls platform data, the nginx configurations;
- ``measure``: wrk and the Python client as measurements, and the run (start, check, alternate);
- ``report``: the tables; ``profiling``: ``--profile``; ``naive``: the Python client (a process).

A package so that mypy names the modules ``egress.*``, apart from ``bench/gateway/run.py``
(module ``run``), whose helpers they import. ``run.py`` puts ``bench/`` and ``bench/gateway`` on
``sys.path`` first; the modules are not meant to be imported any other way.
"""
