"""The generated parts of the documentation, read from the code so that they cannot drift from it:
the command-line reference (cli.py, from hpsearch's argparse parsers), the study-file reference
and its JSON Schema (study_file.py and schema.py, from the frozen dataclasses of
search/studyfile), and the MkDocs hooks that put them into the pages (hooks.py).

tests/test_docs.py checks them against the parsers and the study-file loader themselves; `python -m
docs.gen.schema` rewrites docs/study-file.schema.json, which the build and the tests compare with
what the code says."""
