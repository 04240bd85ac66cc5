"""A chaos run's result as people read it: every invariant PASS or FAIL with its detail, then the
figures."""

from __future__ import annotations

import json


def all_held(result: dict) -> bool:
    return all(check["ok"] for checks in result["invariants"].values() for check in checks)


def text(result: dict) -> str:
    way = ", through the gRPC proxy" if result["settings"].get("through_proxy") else ""
    lines = [
        f"\n=== chaos: {result['seconds']:.0f} s, {len(result['studies'])} study(ies){way} ==="
    ]
    for study, checks in result["invariants"].items():
        lines.append(f"{study}:")
        lines += [
            f"  {'PASS' if check['ok'] else 'FAIL'}  {check['name']}: {check['detail']}"
            for check in checks
        ]
    lines += [
        f"invariants held: {result['invariants_held']}",
        f"faults by kind: {_pairs(result['faults_by_kind'])}",
        f"run starts: {result['run_starts']}",
        f"epochs: {_pairs(result['epochs'])}",
        "epochs retrained per fault: "
        + "; ".join(
            f"{cause}: {found['epochs_retrained']} over {found['attempts']} attempt(s)"
            for cause, found in result["retrained_by_fault"].items()
        ),
        "seconds from fault to the next epoch trained (median/max, n): "
        + "; ".join(
            f"{kind}: "
            + ", ".join(
                f"{'any trial' if key == 'to_any_epoch' else 'a trial it hit'} "
                f"{found['median']}/{found['max']} ({found['n']})"
                for key, found in timing.items()
            )
            for kind, timing in result["resume_seconds_by_kind"].items()
        ),
    ]
    errors = {study: found for study, found in result["log_errors"].items() if found}
    if errors:
        lines.append(f"tracebacks in the run logs: {json.dumps(errors)}")
    lines.append(f"logs: {', '.join(result['logs'])}")
    return "\n".join(lines)


def _pairs(found: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in found.items()) or "none"
