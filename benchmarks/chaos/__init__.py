"""Chaos without loss (issue 29): random kills, outages and full disks during a real search, and
every invariant a user relies on checked at the end.

`python -m benchmarks.chaos --seed 1 --minutes 10 --workers 3 --json chaos.json` makes its own
small images, a PostgreSQL cluster of its own on a free port (never the shared one) and a small
tmpfs for the checkpoints, and runs `python -m search run` on an asha study with an epoch budget,
in a process group of its own, as a user would. While it runs, a fault injector driven by
`random.Random(seed)` strikes at random moments (`faults.KINDS`); when a run ends before its study
is done, it is started again, as a user would. When the study is done before the minutes are up,
another study starts in the same storage. After --minutes no fault is injected and the last
study is let finish. Then every invariant (`invariants.py`) is checked and printed, with the
figures (`figures.py`): faults by kind, epochs retrained per fault, seconds from each fault to
resumed training. With --through-proxy the workers reach the database through `hpsearch
grpc-proxy` (a process of the harness's own, on a fixed port), which the fault `restart_proxy`
kills and starts again; the harness's own reads stay on the database.

The modules: `scene` (images, study file, tmpfs), `search_run` (the `hpsearch run` process and its
workers), `proxy` (the gRPC proxy), `watch` (what the database shows while faults strike),
`faults`, `harness` (the loop), `invariants`, `figures`.
"""
