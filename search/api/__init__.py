"""The Python API: what a notebook calls, and what the `hpsearch` commands call once they have read
their flags. `search/__init__.py` re-exports these functions by name, importing each module only
when one of its names is first used, so that `import search` loads neither torch nor Plotly.

One module a kind of work, so that reading a study loads only what reading needs:
studies.py (open a study, its status, its trials, export the best: no torch, no Plotly),
report.py (the report's figures: Plotly), searching.py (run a search: torch), training.py (train or
evaluate one configuration: torch). The functions here are thin: each resolves its arguments as its
command does (the storage: argument, then $HPSEARCH_STORAGE, then the default) and calls the layers
below.
"""
