"""What `hpsearch kubernetes` does once parsed: render the manifests for a study's workers."""

from __future__ import annotations

import argparse
import sys

from search.launch.kubernetes import KubernetesJob, delete_command, render, secret_command
from search.results import output_file
from search.studyfile import load_study_config
from trainer.outputs import check_output_file


def kubernetes(args: argparse.Namespace) -> int:
    if args.output is not None:  # as every command checks -o: before the study file is read
        check_output_file(args.output, "-o", "hpsearch.yaml")
        output_file.check_not_data(args.output, "-o")  # `-o quick.toml`, `-o hpsearch.db`
    config = load_study_config(args.study_file).with_overrides(
        trials=args.trials, epochs=args.epochs, image_size=args.image_size
    )
    job = KubernetesJob(
        workers=args.workers,
        image=args.image,
        namespace=args.namespace,
        gpus_per_worker=args.gpus_per_worker,
        cpu=args.cpu,
        memory=args.memory,
        data_pvc=args.data_pvc,
        checkpoint_pvc=args.checkpoint_pvc,
        storage_secret=args.storage_secret,
        dashboard=args.with_dashboard,
        trials=args.trials,
        compile=args.compile,
        trials_per_worker=args.trials_per_worker,
        log_format=args.log_format,
    )
    text = render(config, job)  # every check passes before anything is printed or written
    if args.output is None:
        print(text, end="")
    else:
        output_file.write_text(args.output, text, "-o")  # whole, or the earlier file stays
        # The Secret first, as the file's header says: a reader of this line alone would apply
        # manifests whose pods wait on a Secret that is not there; and the delete that spares
        # what other studies share, where `kubectl delete -f` is the obvious, wrong, one
        print(
            f"wrote {args.output}: first, once: {secret_command(job)}; then: "
            f"kubectl apply -f {args.output}; to delete this study's run alone: "
            f"{delete_command(config, job)}",
            file=sys.stderr,
        )
    return 0
