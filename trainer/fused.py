"""Several trials of one model trained as one grouped network: bigger kernels for the same steps.

K trials' ResNets run as one network whose every Conv2d has K times the channels and the groups,
every BatchNorm2d K times the channels, and whose final Linear is K independent blocks
(`GroupedLinear`). Trial k owns channels k*C..(k+1)*C of every layer and the groups never mix, so
each trial's logits, loss and gradients are those it would have alone (HFTA, Wang et al., MLSys
2021). The input is the K trials' own batches side by side on the channel axis: each keeps its own
shuffle and crops.

Each trial keeps its own model (built by `build_model`, so its state_dict, checkpoint and weights
file are those it writes alone), optimizer and schedule. The fused weights are not stored: every
forward pass concatenates the trials' leaves (cheap next to the step) and runs a template network
on them through `functional_call`, so gradients land on each trial's own parameters, and a trial
joins or leaves a group without its weights being copied.

BatchNorm buffers: the trials' own buffers stay the truth. A training forward pass updates the
concatenated running means and variances in place; they are then copied back, slice by slice, and
each trial's `num_batches_tracked` counts the step, as it would alone. The template's counters are
meta tensors that count nothing: ResNets' BatchNorm has a fixed momentum, so the counter never
enters the arithmetic (a momentum of None would fail loudly on reading a meta tensor).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from itertools import chain

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.func import functional_call

from trainer.augment import Batch
from trainer.epoch import (
    LOSS_CHECK_EVERY,
    as_model_input,
    mixed_precision,
)
from trainer.errors import ConfigError, NonFiniteLossError

COUNTER = "num_batches_tracked"  # BatchNorm's step counter: per trial, never concatenated


class GroupedLinear(nn.Module):
    """K Linear layers side by side: input (B, K*in_features), output (B, K*out_features), block
    k of the output from block k of the input only. `weight` is the K weights stacked on dim 0,
    as `torch.cat` of the trials' own (out_features, in_features) weights gives it."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups * out_features, in_features, device="meta"))
        self.bias = (
            nn.Parameter(torch.empty(groups * out_features, device="meta")) if bias else None
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[0]
        blocks = features.view(batch, self.groups, self.in_features).transpose(0, 1)
        weights = self.weight.view(self.groups, self.out_features, self.in_features)
        if self.bias is None:
            out = torch.bmm(blocks, weights.transpose(1, 2))
        else:
            bias = self.bias.view(self.groups, 1, self.out_features)
            out = torch.baddbmm(bias, blocks, weights.transpose(1, 2))
        return out.transpose(0, 1).reshape(batch, self.groups * self.out_features)


class FusedNetwork:
    """The models of K trials (one architecture) run as one network; `members[k]` is trial k's.

    The members are fixed for the network's life: a slot takes another trial in a new
    FusedNetwork, which copies no weights.
    """

    def __init__(self, members: Sequence[nn.Module]):
        _check_fusable(members)
        self.members = tuple(members)
        self._template = _fused_template(self.members[0], len(self.members))
        own = [dict(chain(m.named_parameters(), m.named_buffers())) for m in self.members]
        self._statistic_names = [
            name for name, _ in self._template.named_buffers() if not name.endswith(COUNTER)
        ]
        # What each fused tensor is made of: the members' own tensors, in slot order
        self._parts = {
            name: [tensors[name] for tensors in own]
            for name in chain(
                (name for name, _ in self._template.named_parameters()), self._statistic_names
            )
        }
        self._statistics = [tensors[name] for name in self._statistic_names for tensors in own]
        self._counters = [
            buffer for tensors in own for name, buffer in tensors.items() if name.endswith(COUNTER)
        ]

    @property
    def device(self) -> torch.device:
        return next(self.members[0].parameters()).device

    def train(self, mode: bool = True) -> None:
        for module in (*self.members, self._template):
            module.train(mode)

    def eval(self) -> None:
        self.train(False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, classes) of images (B, K*3, H, W), trial k's in channels 3k..3k+2."""
        fused = {name: torch.cat(parts) for name, parts in self._parts.items()}
        logits = functional_call(self._template, fused, (images,))
        if self._template.training:
            self._keep_statistics(fused)
        return logits.view(images.shape[0], len(self.members), -1)

    @torch.no_grad()
    def _keep_statistics(self, fused: dict[str, torch.Tensor]) -> None:
        """Copy the running statistics the step updated back into each trial's buffers, and count
        the step in each trial's counters (multi-tensor kernels: a few launches, not 60 K)."""
        slices = [
            part for name in self._statistic_names for part in fused[name].chunk(len(self.members))
        ]
        torch._foreach_copy_(self._statistics, slices)
        torch._foreach_add_(self._counters, 1)


def _check_fusable(members: Sequence[nn.Module]) -> None:
    """Only ResNets: in their forward pass nothing but Conv2d, BatchNorm2d, ReLU, pooling, adds and
    the final Linear touches the channels, each within a trial's block. Other families mix
    channels (ShuffleNet's channel shuffle), normalise across them (LayerNorm in ConvNeXt and the
    ViTs) or draw dropout masks that would differ from the trial's own."""
    if not members:
        raise ConfigError("a fused network needs at least one trial's model, but got none")
    for member in members:
        if not isinstance(member, torchvision.models.ResNet):
            raise ConfigError(
                f"cannot fuse {type(member).__name__} models: only torchvision's ResNet family "
                "(resnet*, resnext*, wide_resnet*) fuses; train this model one trial per worker"
            )
    shapes = [[(name, t.shape) for name, t in m.state_dict().items()] for m in members]
    for slot, slot_shapes in enumerate(shapes):
        if slot_shapes != shapes[0]:
            raise ConfigError(
                f"cannot fuse trial {slot}'s model with trial 0's: their layers differ; fuse only "
                "trials of the same model and number of classes"
            )


def _fused_template(member: nn.Module, groups: int) -> nn.Module:
    """`member`'s architecture with every layer widened to `groups` trials. The widened layers
    hold meta tensors, which take no memory: `FusedNetwork` supplies the real ones at each call."""
    template = copy.deepcopy(member)
    for parent in list(template.modules()):
        for name, child in list(parent.named_children()):
            fused = _fused_layer(child, groups)
            if fused is not None:
                setattr(parent, name, fused)
    return template


def _fused_layer(layer: nn.Module, groups: int) -> nn.Module | None:
    if isinstance(layer, nn.Conv2d):
        # Passed as the layer holds them: torch types its stored sizes as tuples of any length,
        # which Conv2d's signature does not take
        spatial = {
            name: getattr(layer, name)
            for name in ("kernel_size", "stride", "padding", "dilation", "padding_mode")
        }
        return nn.Conv2d(
            groups * layer.in_channels,
            groups * layer.out_channels,
            groups=groups * layer.groups,
            bias=layer.bias is not None,
            device="meta",
            **spatial,
        )
    if isinstance(layer, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            groups * layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
            track_running_stats=layer.track_running_stats,
            device="meta",
        )
    if isinstance(layer, nn.Linear):
        return GroupedLinear(groups, layer.in_features, layer.out_features, layer.bias is not None)
    return None


def train_fused_epoch(
    network: FusedNetwork,
    batches: Iterable[Sequence[Batch]],
    optimizers: Sequence[torch.optim.Optimizer],
    schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler],
    *,
    epochs: Sequence[int],
    label_smoothing: Sequence[float],
) -> list[float | NonFiniteLossError]:
    """`train_one_epoch` for K trials at once: each step takes one batch per trial (in
    `network.members`' order) and steps each trial's own optimizer and schedule. `epochs` are the
    trials' own epoch numbers (a trial that joined the group later is at an earlier epoch).

    Returns each trial's mean training loss, or the NonFiniteLossError of a trial whose loss
    became NaN or infinite: that trial has failed, the others go on untouched (their groups never
    meet its values). A failed trial keeps stepping to the end of the epoch; its slot's share of
    the grouped kernels runs anyway, and the caller drops its weights.
    """
    network.train()
    loss_sums = torch.zeros(len(network.members), device=network.device)
    diverged: dict[int, NonFiniteLossError] = {}
    step = 0
    for step, group in enumerate(batches, start=1):
        loss_sums += _fused_step(network, group, optimizers, schedulers, label_smoothing)
        if step % LOSS_CHECK_EVERY == 0:
            _note_diverged(loss_sums, epochs, step, diverged)
    totals = _note_diverged(loss_sums, epochs, step, diverged)
    return [diverged.get(slot, total / max(step, 1)) for slot, total in enumerate(totals)]


def _fused_step(
    network: FusedNetwork,
    group: Sequence[Batch],
    optimizers: Sequence[torch.optim.Optimizer],
    schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler],
    label_smoothing: Sequence[float],
) -> torch.Tensor:
    """One step of every trial; returns their losses (K,), detached."""
    images = _side_by_side([images for images, _ in group])
    with mixed_precision(network.device):
        logits = network(as_model_input(images))
        losses = torch.stack(
            [
                F.cross_entropy(logits[:, slot], labels, label_smoothing=smoothing)
                for slot, ((_, labels), smoothing) in enumerate(zip(group, label_smoothing))
            ]
        )
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    # One backward for all: trial k's parameters reach only its own loss, so the sum's gradient
    # for them is its loss's gradient alone.
    losses.sum().backward()
    for optimizer, scheduler in zip(optimizers, schedulers):
        optimizer.step()
        scheduler.step()
    return losses.detach().float()


def _side_by_side(images: Sequence[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(batch.shape) for batch in images}
    if len(shapes) > 1:
        raise ConfigError(
            f"fused trials need batches of one shape (batch size and image size), but got "
            f"{sorted(shapes)}; fuse only trials with the same batch_size and image_size"
        )
    return torch.cat(list(images), dim=1)


def _note_diverged(
    loss_sums: torch.Tensor,
    epochs: Sequence[int],
    step: int,
    diverged: dict[int, NonFiniteLossError],
) -> list[float]:
    """The losses summed so far, read on the host (the one wait for the GPU); records in
    `diverged` each trial whose sum is seen non-finite for the first time."""
    totals = loss_sums.tolist()
    for slot, total in enumerate(totals):
        if not math.isfinite(total):
            diverged.setdefault(slot, NonFiniteLossError(epochs[slot], step))
    return totals


@torch.inference_mode()
def evaluate_fused(
    network: FusedNetwork, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> list[tuple[float, float]]:
    """`evaluate` for K trials at once: each trial's top-1 (0..1) and mean cross-entropy over the
    same `batches`."""
    network.eval()
    trials = len(network.members)
    correct = torch.zeros(trials, device=network.device, dtype=torch.long)
    loss_sums = torch.zeros(trials, device=network.device)
    count = 0
    for images, labels in batches:
        with mixed_precision(network.device):
            logits = network(as_model_input(images.repeat(1, trials, 1, 1)))
        every_trial = labels[:, None].expand(-1, trials)
        loss_sums += F.cross_entropy(
            logits.float().transpose(1, 2), every_trial, reduction="none"
        ).sum(0)
        correct += (logits.argmax(dim=2) == every_trial).sum(0)
        count += len(labels)
    return [
        (right / max(count, 1), loss / max(count, 1))
        for right, loss in zip(correct.tolist(), loss_sums.tolist())
    ]
