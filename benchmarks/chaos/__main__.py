"""`python -m benchmarks.chaos --seed 1 --minutes 10 --workers 3 --json chaos.json`: see
benchmarks/chaos/__init__.py. Needs root (the checkpoint tmpfs; without it the disk fault is left
out) and PostgreSQL's server tools (initdb, pg_ctl), run as the `postgres` user."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from benchmarks.chaos import report
from benchmarks.chaos.faults import KINDS
from benchmarks.chaos.harness import run_chaos
from benchmarks.chaos.proxy import ProxyDown
from benchmarks.chaos.scene import DEFAULT_MODEL, Settings
from tests.helpers.private_postgres import ClusterUnavailable


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10.0, help="inject faults this long")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12, help="each study's trial budget")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images-per-class", type=int, default=200, help="training images")
    parser.add_argument("--epochs-budget", type=int, help="default: trials * epochs / 2")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--trials-per-worker", type=int, default=1)
    parser.add_argument(
        "--faults",
        help=f"kinds to inject (default all: {','.join(KINDS)}; restart_proxy: --through-proxy)",
    )
    parser.add_argument(
        "--in-order", action="store_true", help="inject --faults in their order, not drawn"
    )
    parser.add_argument("--max-faults", type=int)
    parser.add_argument("--gap", type=float, nargs=2, default=(8.0, 30.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--cap-minutes", type=float, default=15.0, help="to finish after --minutes")
    parser.add_argument("--tmpfs-mb", type=int, default=96, help="0: a plain folder, no disk fault")
    parser.add_argument("--rounds", type=int, help="studies at most (default: as time allows)")
    parser.add_argument(
        "--through-proxy",
        action="store_true",
        help="the workers reach the database through `hpsearch grpc-proxy`, which may be restarted",
    )
    parser.add_argument("--workdir", type=Path, help="default: a new folder in /tmp, kept")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    kinds = tuple(kind for kind in (args.faults or ",".join(KINDS)).split(",") if kind)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--faults: unknown {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if args.faults and "restart_proxy" in kinds and not args.through_proxy:
        parser.error("--faults restart_proxy needs --through-proxy (else there is no proxy)")
    settings = Settings(
        seed=args.seed, minutes=args.minutes, workers=args.workers, trials=args.trials,
        epochs=args.epochs, images_per_class=args.images_per_class,
        epochs_budget=args.epochs_budget, model=args.model,
        trials_per_worker=args.trials_per_worker, faults=kinds, in_order=args.in_order,
        max_faults=args.max_faults, gap_seconds=tuple(args.gap), cap_minutes=args.cap_minutes,
        tmpfs_mb=args.tmpfs_mb or None, rounds=args.rounds, through_proxy=args.through_proxy,
    )  # fmt: skip
    return settings, args


def main(argv: list[str] | None = None) -> int:
    settings, args = parse(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{settings.seed}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    way = ", through the gRPC proxy" if settings.through_proxy else ""
    print(f"chaos: seed {settings.seed}, {settings.workers} workers{way}, in {workdir}", flush=True)
    try:
        result = run_chaos(settings, workdir, say=_flushed(print))
    except ClusterUnavailable as error:
        print(
            f"chaos: no private PostgreSQL cluster ({error}); install postgresql", file=sys.stderr
        )
        return 2
    except ProxyDown as error:
        print(f"chaos: {error}", file=sys.stderr)
        return 2
    print(report.text(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0 if report.all_held(result) else 1


def _flushed(say: Callable[[str], None]) -> Callable[[str], None]:
    def flushed(line: str) -> None:
        say(line)
        sys.stdout.flush()

    return flushed


if __name__ == "__main__":
    sys.exit(main())
