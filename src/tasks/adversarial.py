"""A GAN: the discriminator and the generator take turns, with the non-saturating generator loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from torch import nn

from src import visuals
from src.data.datamodule import Batch
from src.data.spec import DataSpec
from src.errors import check, count, number
from src.tasks.task import ModelFactory, OptimizerFactory, Task, Visual
from src.training.distributed import rows_of_one_draw

DISCRIMINATOR, GENERATOR = 0, 1


def mode_metrics(samples: Tensor, modes: Tensor, std: float) -> dict[str, Tensor]:
    """The PacGAN paper's three measures of mode collapse.

    ``high_quality``: fraction of samples within 3 std of their nearest mode.
    ``modes_covered``: modes nearest to at least one high-quality sample.
    ``reverse_kl``: KL(p ‖ uniform), p the histogram of the high-quality samples over their nearest
    modes: 0 when every mode gets its share, log M when one mode gets them all (also its value when no
    sample is of high quality, where p is undefined).

    ``samples``: [n, d], or [K, n, d] for K members (one value per member)."""
    distances = torch.cdist(samples.float(), modes.float().expand(*samples.shape[:-2], *modes.shape))
    nearest, index = distances.min(dim=-1)
    good = nearest <= 3 * std
    counts = (F.one_hot(index, len(modes)) * good.unsqueeze(-1)).sum(dim=-2).float()
    total = counts.sum(-1, keepdim=True)
    share = counts / total.clamp_min(1)
    reverse_kl = torch.xlogy(share, share * len(modes)).sum(-1)
    reverse_kl = torch.where(total.squeeze(-1) > 0, reverse_kl, torch.tensor(math.log(len(modes)), device=samples.device))
    return {"modes_covered": (counts > 0).sum(-1).float(), "high_quality": good.float().mean(-1), "reverse_kl": reverse_kl}


class Adversarial(Task):
    loss_names = ("d_loss", "g_loss")
    evaluated_splits = ("val",)
    adversarial = True

    def __init__(
        self,
        model: nn.Module | ModelFactory,
        spec: DataSpec | None = None,
        discriminator_steps: int = 1,
        generator_steps: int = 1,
        eval_samples: int = 2500,
        r1_gamma: float = 0.0,
    ) -> None:
        super().__init__(model, spec)
        # Bounded: the turns are a tuple of the steps, and the samples are scored against every mode at once.
        steps = (check("task.discriminator_steps", discriminator_steps, count(1, 1000)), check("task.generator_steps", generator_steps, count(1, 1000)))
        self.optimizer_order = (DISCRIMINATOR,) * steps[0] + (GENERATOR,) * steps[1]
        self.eval_samples = check("task.eval_samples", eval_samples, count(1, 10**6))
        self.r1_gamma = check("task.r1_gamma", r1_gamma, number(0, 1e6))
        info = spec.info if spec is not None else {}
        modes = info.get("modes")  # a mixture's centres: the samples' quality and coverage are measured against them
        self.register_buffer("modes", None if modes is None else torch.as_tensor(modes, dtype=torch.float32), persistent=False)
        self.mode_std = info.get("mode_std")
        self.monitor, self.monitor_mode = ("high_quality", "max") if modes is not None else ("g_loss", "min")
        if self.members > 1:
            # Each member's noise from its own generator, which goes on from where its seed alone would.
            self.generators = [torch.Generator().set_state(state) for state in self.model.member_random_states]

    def configure_optimizers(self, make_optimizer: OptimizerFactory) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.model.discriminator.parameters()), make_optimizer(self.model.generator.parameters())]

    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latent draws ([K, n, latent] for stacked members: each its own, or the same ones from ``generator``)."""
        device = next(self.model.parameters()).device
        if self.members == 1:
            return torch.randn(n, self.model.latent_dim, device=device, generator=generator)
        if generator is not None:
            return torch.randn(n, self.model.latent_dim, device=device, generator=generator).expand(self.members, n, -1)
        # Drawn on the CPU, where the members' generators live: equal to solo runs there, alike in law on a GPU.
        return torch.stack([torch.randn(n, self.model.latent_dim, generator=g) for g in self.generators]).to(device)

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        latent = rows_of_one_draw(self.latent, self.rows(batch), batch[0].device, axis=1 if self.members > 1 else 0)
        if optimizer_index == GENERATOR:
            return self._generator_loss(self.model.generator(latent))
        with torch.no_grad():  # the discriminator's turn: no graph through the generator
            fake = self.model.generator(latent)
        return self._discriminator_loss(batch[0], fake, penalize=self.r1_gamma > 0)

    def _discriminator_loss(self, real: Tensor, fake: Tensor, penalize: bool = False) -> Tensor:
        """-log D(x) - log(1 - D(G(z))), plus with ``penalize`` the R1 penalty γ/2 · E‖∇ₓD(x)‖² on the
        real samples (Mescheder et al., 2018), which keeps the discriminator flat on the data so that the
        two networks converge instead of circling the equilibrium."""
        real_score, squared_norms = self._r1(real) if penalize else (self.model.discriminator(real), None)
        fake_score = self.model.discriminator(fake)
        bce = F.binary_cross_entropy_with_logits
        loss = self.batch_mean(bce, real_score, torch.ones_like(real_score)) + self.batch_mean(bce, fake_score, torch.zeros_like(fake_score))
        return loss if squared_norms is None else loss + self.r1_gamma / 2 * squared_norms

    def _r1(self, real: Tensor) -> tuple[Tensor, Tensor]:
        """D(x) on the real samples and E‖∇ₓD(x)‖² per member, in float32 under mixed precision too: the
        loss scaler scales only the outer backward, and this inner gradient in fp16 could underflow."""
        real = real.detach().float().requires_grad_(True)
        with torch.autocast(real.device.type, enabled=False):
            real_score = self.model.discriminator(real)
            (gradient,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
        verdicts = real_score.shape[-2]  # per member: a packing discriminator gives one per pack
        return real_score, gradient.pow(2).flatten(-1 - len(self.model.sample_shape)).sum(-1) / verdicts

    def _generator_loss(self, fake: Tensor) -> Tensor:
        """Non-saturating: -log D(G(z)), which still has gradient when D rejects every fake."""
        score = self.model.discriminator(fake)
        return self.batch_mean(F.binary_cross_entropy_with_logits, score, torch.ones_like(score))

    def _fixed_samples(self, n: int) -> Tensor:
        """Samples from a fixed latent draw: comparable across checks, and the training RNG stays untouched."""
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(0)
        return self.model.generator(self.latent(n, generator))

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, Tensor]:
        totals = {"d_loss": 0.0, "g_loss": 0.0}
        count = 0
        generator = torch.Generator(device=next(self.model.parameters()).device).manual_seed(1)
        for batch in batches:
            real, n = batch[0], self.rows(batch)
            fake = self.model.generator(self.latent(n, generator))
            totals["d_loss"] = totals["d_loss"] + self._discriminator_loss(real, fake) * n
            totals["g_loss"] = totals["g_loss"] + self._generator_loss(fake) * n
            count += n
        metrics = {name: total / count for name, total in totals.items()}
        if self.modes is not None:
            samples = self._fixed_samples(self.eval_samples).flatten(-len(self.model.sample_shape))
            metrics.update(mode_metrics(samples, self.modes, self.mode_std))
        return metrics

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        return self.evaluate(iter([batch]))

    def solo_view(self) -> Task:
        """Members of a GAN make no ensemble: the task shows its first member."""
        return self

    def _first_member(self, samples: Tensor) -> Tensor:
        return samples[0] if self.members > 1 else samples

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        """The first member's samples (the first seed's): pictures in a grid, 2-D points over the real ones, any
        other sample (a sequence, a row of features) as a line of its values beside a real one's."""
        real = splits["train"][0]
        if real.dim() == 4:
            return {"samples/generated": visuals.image_grid(self._first_member(self._fixed_samples(64)), columns=8, scale=4)}
        if real.dim() == 2 and real.shape[1] == 2:
            fake = self._first_member(self._fixed_samples(self.eval_samples))
            low, high = real.min(0).values.cpu() - 0.5, real.max(0).values.cpu() + 0.5
            return {"samples/generated_vs_real": visuals.scatter([real[: self.eval_samples], fake], low, high, names=["real", "generated"])}
        fake = self._first_member(self._fixed_samples(1))[0]
        return {"samples/generated_vs_real": visuals.line_plot([real[0].flatten(), fake.flatten()], names=["real", "generated"])}

    def graph_module(self) -> nn.Module:
        """Both networks, as a sample flows through them: latent → generator → discriminator → logit."""
        return GeneratorThenDiscriminator(self.model.generator, self.model.discriminator)

    def example_input(self, batch: Batch) -> Tensor:
        pack = getattr(self.model, "pack", 1)  # a packing discriminator judges `pack` samples at once
        return self.latent(pack, torch.Generator(device=next(self.model.parameters()).device).manual_seed(0))


class GeneratorThenDiscriminator(nn.Module):
    """The GAN's two networks in a row, for its graph (the model's own forward is the generator alone)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, z: Tensor) -> Tensor:
        return self.discriminator(self.generator(z))
