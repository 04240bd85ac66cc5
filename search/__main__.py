import sys

from search.cli import command

sys.exit(command())
