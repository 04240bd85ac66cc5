"""Ranger (RAdam + Lookahead) with foreach steps: torch-optimizer's algorithm, a few kernels a step.

torch-optimizer's Ranger (pytorch-ranger) walks the parameters in Python: 775 operators a step for
ResNet-18, each a kernel launch on a GPU, where this one dispatches 14
(benchmarks/optimizer_step.py; on a CPU, where foreach is a loop anyway, this one is a few percent
slower: benchmarks/RESULTS.md). The same algorithm is torch.optim.RAdam with decoupled weight decay,
plus Lookahead every k steps, both over all tensors at once. tests/test_ranger.py checks that it
follows torch-optimizer's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import overload

import torch

# Per-parameter state: the slow weights Lookahead pulls the fast ones towards
SLOW = "lookahead_slow"


class Ranger(torch.optim.RAdam):
    """RAdam whose weights are pulled `alpha` of the way back to slow weights every `k` steps.

    Defaults are torch-optimizer's: betas (0.95, 0.999), eps 1e-5, alpha 0.5, k 6, weight decay
    decoupled and scaled by lr (p -= lr * weight_decay * p), the rectification threshold 5.
    A group's parameters are taken to step together, as in training one model: Lookahead counts
    the group's steps by its first parameter's.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        alpha: float = 0.5,
        k: int = 6,
    ):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Lookahead alpha must be in [0, 1], but got alpha={alpha}")
        if k < 1:
            raise ValueError(f"Lookahead k must be at least 1, but got k={k}")
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
            foreach=True,
        )
        for group in self.param_groups:
            group.setdefault("alpha", alpha)
            group.setdefault("k", k)

    def load_state_dict(self, state_dict: dict) -> None:
        """Also takes torch-optimizer's Ranger state, so
        checkpoints written before this class resume.

        Loaded as it is, that state would run silently as another algorithm: its groups lack
        decoupled_weight_decay (RAdam would then default to L2) and its slow weights
        have another name.
        """
        if any("N_sma_threshhold" in group for group in state_dict["param_groups"]):
            state_dict = self._from_torch_optimizer(state_dict)
        super().load_state_dict(state_dict)

    def _from_torch_optimizer(self, state_dict: dict) -> dict:
        groups = []
        for ours, theirs in zip(self.param_groups, state_dict["param_groups"]):
            group = {
                key: value
                for key, value in theirs.items()
                if key not in ("N_sma_threshhold", "step_counter")
            }
            for key, value in ours.items():
                if key != "params":
                    # RAdam's own settings, decoupled weight decay among them
                    group.setdefault(key, value)
            groups.append(group)
        state = {
            index: {
                "step": torch.tensor(float(saved["step"])),
                "exp_avg": saved["exp_avg"],
                "exp_avg_sq": saved["exp_avg_sq"],
                SLOW: saved["slow_buffer"],
            }
            for index, saved in state_dict["state"].items()
        }
        return {"state": state, "param_groups": groups}

    # Optimizer.step's overloads: a closure's loss is returned, no closure returns None
    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            # First: its gradients say which parameters step, so the slow weights start from the
            # weights of their first step, as without a closure (torch-optimizer's ignores it)
            with torch.enable_grad():
                loss = closure()
        started = self._start_slow_weights()
        super().step()
        for group, slow_start in zip(self.param_groups, started):
            self._lookahead(group, slow_start)
        return loss

    def _start_slow_weights(self) -> list[dict[torch.nn.Parameter, torch.Tensor]]:
        """Copies of the weights a parameter's first step starts from: its first slow weights."""
        return [
            {
                p: p.detach().clone()
                for p in group["params"]
                if p.grad is not None and SLOW not in self.state[p]
            }
            for group in self.param_groups
        ]

    def _lookahead(self, group: dict, slow_start: dict[torch.nn.Parameter, torch.Tensor]) -> None:
        for p, slow in slow_start.items():
            self.state[p][SLOW] = slow
        stepped = [p for p in group["params"] if p.grad is not None]
        if not stepped:
            return
        # RAdam keeps "step" on the host unless capturable, so reading it never waits for a GPU.
        if int(self.state[stepped[0]]["step"]) % group["k"]:
            return
        slows = [self.state[p][SLOW] for p in stepped]
        torch._foreach_lerp_(slows, stepped, group["alpha"])  # slow += alpha * (fast - slow)
        torch._foreach_copy_(stepped, slows)
