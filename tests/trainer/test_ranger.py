"""Our foreach Ranger against torch-optimizer's, the reference it replaces."""

import pytest
import torch
import torch_optimizer

from trainer import TrainConfig
from trainer.optim import build_optimizer
from trainer.ranger import Ranger

STEPS = 40  # past RAdam's warm-up without rectification (5 steps) and six Lookahead syncs

# pytorch-ranger calls a deprecated addcmul_ overload on every step.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This overload of addcmul_ is deprecated:UserWarning"
)


def small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 10),
    )


def trajectory(make_optimizer, steps: int = STEPS) -> list[list[torch.Tensor]]:
    """The weights after each step, given the same random gradients whatever the weights are: the
    optimizers' rounding differences then stay at rounding size instead of
    growing through training."""
    model = small_network()
    optimizer = make_optimizer(model.parameters())
    generator = torch.Generator().manual_seed(1)
    weights = []
    for _ in range(steps):
        step_with_random_gradients(model, optimizer, generator)
        weights.append([p.detach().clone() for p in model.parameters()])
    return weights


def step_with_random_gradients(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    steps: int = 1,
) -> None:
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()


def reference(**settings):
    return lambda parameters: torch_optimizer.Ranger(parameters, **settings)


@pytest.mark.parametrize(
    "settings",
    [
        {"lr": 8e-3, "eps": 1e-6},
        {"lr": 3e-2, "eps": 1e-5, "weight_decay": 1e-2},
        {"lr": 1e-3, "eps": 1e-8, "alpha": 0.8, "k": 4},
    ],
)
def test_follows_torch_optimizers_ranger_step_by_step(settings):
    expected = trajectory(reference(**settings))
    ours = trajectory(lambda parameters: Ranger(parameters, **settings))
    for step, (want, got) in enumerate(zip(expected, ours), start=1):
        for reference_weight, our_weight in zip(want, got):
            torch.testing.assert_close(
                our_weight,
                reference_weight,
                rtol=1e-5,
                atol=1e-6,
                msg=lambda text, step=step: f"step {step}: {text}",
            )


def test_lookahead_pulls_weights_back_every_k_steps():
    """Between syncs the weights move like plain RAdam's; at a sync, halfway back to the slow
    weights."""
    radam = trajectory(
        lambda parameters: torch.optim.RAdam(
            parameters, lr=1e-2, betas=(0.95, 0.999), eps=1e-5, decoupled_weight_decay=True
        ),
        steps=6,
    )
    ours = trajectory(lambda parameters: Ranger(parameters, lr=1e-2, k=6), steps=6)
    start = [p.detach() for p in small_network().parameters()]
    for step in range(5):
        for plain, looked_ahead in zip(radam[step], ours[step]):
            torch.testing.assert_close(looked_ahead, plain)
    for first, plain, looked_ahead in zip(start, radam[5], ours[5]):
        torch.testing.assert_close(looked_ahead, first + 0.5 * (plain - first))


def test_resumes_from_its_state_dict_exactly():
    """Lookahead's slow weights travel in the state dict, so a checkpoint resumes the same run."""
    whole = trajectory(lambda parameters: Ranger(parameters, lr=8e-3), steps=10)[-1]

    model = small_network()
    first = Ranger(model.parameters(), lr=8e-3)
    generator = torch.Generator().manual_seed(1)
    # Stops between two Lookahead syncs
    step_with_random_gradients(model, first, generator, steps=4)
    second = Ranger(model.parameters(), lr=8e-3)
    second.load_state_dict(first.state_dict())
    step_with_random_gradients(model, second, generator, steps=6)
    for want, got in zip(whole, model.parameters()):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0)


def test_resumes_from_a_torch_optimizer_ranger_checkpoint():
    """Checkpoints written while the trainer used torch-optimizer's Ranger continue the same
    algorithm."""
    settings = {"lr": 8e-3, "eps": 1e-6, "weight_decay": 1e-2}
    expected = trajectory(reference(**settings), steps=10)[-1]

    model = small_network()
    theirs = reference(**settings)(model.parameters())
    generator = torch.Generator().manual_seed(1)
    step_with_random_gradients(model, theirs, generator, steps=4)
    ours = Ranger(model.parameters(), **settings)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["decoupled_weight_decay"] and ours.param_groups[0]["eps"] == 1e-6
    step_with_random_gradients(model, ours, generator, steps=6)
    for want, got in zip(expected, model.parameters()):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_trainer_builds_our_ranger_with_the_configs_settings():
    optimizer = build_optimizer(
        TrainConfig(optimizer="ranger", lr=8e-3, eps=1e-6, weight_decay=1e-4),
        small_network().parameters(),
    )
    assert isinstance(optimizer, Ranger)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["eps"], group["weight_decay"], group["betas"]) == (
        8e-3,
        1e-6,
        1e-4,
        (0.95, 0.999),
    )
    assert group["foreach"] and group["decoupled_weight_decay"]


@pytest.mark.parametrize("settings, message", [({"alpha": 1.5}, "alpha"), ({"k": 0}, "k must be")])
def test_bad_lookahead_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Ranger(small_network().parameters(), **settings)


def test_a_closure_steps_as_gradients_made_before_the_step_do():
    """Through a closure, the first step's gradients did not exist yet when the slow weights were
    started: they started a step late, from the weights after it, and every Lookahead sync pulled
    towards the wrong point."""
    inputs = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(2))

    def train(use_closure: bool) -> list[torch.Tensor]:
        model = small_network()
        optimizer = Ranger(model.parameters(), lr=1e-2, k=3)

        def closure() -> float:
            optimizer.zero_grad()
            loss = model(inputs).square().mean()
            loss.backward()
            return float(loss.detach())

        for _ in range(7):  # two Lookahead syncs
            if use_closure:
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
        return [p.detach() for p in model.parameters()]

    for want, got in zip(train(use_closure=False), train(use_closure=True)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
