"""What a generative strategy's generator costs: each model's part of the budget (a seconds or FLOP budget pays for
synthesis and checkpoint selection first), the budget record of its card, and the generator phases of the run's
compute block (generator training with its selection, and synthesis). The quality step after synthesis is
evaluation: it is never part of these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.errors import MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.generate.model import GenerativeModel
from benchmark.synthesis.keys import ModelKey
from benchmark.train.config import GeneratorBudget

SAMPLE_CHUNK = 256


def selection_flops(cost: dict, scores: int) -> int:
    """FLOPs of `scores` checkpoint-selection (and guidance) scores and the reference features (0 for a model
    without selection, or a card from before it)."""
    if not scores or "selection_flops_per_score" not in cost:
        return 0
    return scores * cost["selection_flops_per_score"] + cost["selection_reference_flops"]


def guidance_flops(cost: dict, guided: bool) -> int:
    """FLOPs of the guidance choice's scores (0 when the model chose no guidance weight, or a card from before)."""
    return cost.get("guidance_flops", 0) if guided else 0


def largest_sample_flops(cost: dict) -> int:
    """FLOPs of sampling one image at the costliest guidance weight the model offers (its only rate without one):
    what a FLOP budget sets aside for synthesis before the weight is chosen."""
    return max([cost["sample_flops_per_image"], *cost.get("sample_flops_by_guidance", {}).values()])


def images_per_model(plan: list[int], keys: list[ModelKey]) -> dict[ModelKey, int]:
    """Images each model synthesises for a plan (per group): the conditional model all of them, else each group's
    own model its group's."""
    if any(key.is_all for key in keys):
        return {ModelKey(None): sum(plan)}
    return {key: plan[key.group] for key in keys}


@dataclass(frozen=True)
class BudgetPlan:
    """Each model's part of the training budget, and what a seconds or FLOP budget set aside first (None for a
    steps budget): synthesis and (FLOPs only: a seconds budget counts it as it is spent) checkpoint selection."""

    parts: dict[ModelKey, GeneratorBudget]
    reserved: dict | None


def training_budgets(
    generator: str,
    budget: GeneratorBudget,
    sizes: dict[ModelKey, int],
    models: dict[ModelKey, GenerativeModel],
    costs: dict[ModelKey, dict],
    images: dict[ModelKey, int],
    scores: dict[ModelKey, int],
    device: torch.device,
) -> BudgetPlan:
    """Split `budget` over the models (`sizes`: their training images) by SPLIT_RULE, after a seconds or FLOP budget
    paid for synthesising `images` per model (FLOPs counted; seconds timed on one sampling chunk of an untrained
    copy) and, for FLOPs, for the `scores` checkpoint-selection scores of each model and its guidance choice; FLOP
    parts become whole steps. Synthesis is set aside at the costliest guidance weight a model offers (the weight is
    chosen after training). A budget that cannot pay for that and one step of each model is an error, raised before
    anything trains."""
    kind = budget.kind
    if kind == "steps" or not sizes:
        return BudgetPlan(budget.split(sizes) if sizes else {}, None)
    if kind == "flops":
        synthesis = float(sum(images[key] * largest_sample_flops(costs[key]) for key in models))
        selection = float(
            sum(selection_flops(cost, scores.get(key, 0)) + guidance_flops(cost, True) for key, cost in costs.items())
        )
        one_step = float(sum(cost["step_flops"] for cost in costs.values()))
    else:
        synthesis = sum(
            n * gt.sample_seconds(models[key], min(n, SAMPLE_CHUNK), device) / min(n, SAMPLE_CHUNK)
            for key, n in images.items()
            if n
        )
        selection, one_step = 0.0, 0.0
    left = budget.amount - synthesis - selection
    if left < one_step or left <= 0:
        raise MedAugBenchError(
            f"generator {generator}: its budget of {budget.amount:.4g} {kind} (the generator share of the "
            f"total) cannot pay for synthesising {sum(images.values())} images ({synthesis:.4g} {kind}) and "
            f"checkpoint selection ({selection:.4g} {kind}) plus one training step of each of its {len(models)} "
            f"model(s) ({one_step:.4g} {kind}); raise total_{kind} or generator_share, synthesise fewer images, "
            "or lower select_points"
        )
    parts = budget.of(kind, left).split(sizes)
    if kind == "flops":
        parts = {
            key: part.in_steps(costs[key]["step_flops"], f"generator {generator} ({key})")
            for key, part in parts.items()
        }
    return BudgetPlan(parts, {"synthesis": synthesis, "selection": selection if kind == "flops" else None})


def budget_record(
    budget: GeneratorBudget,
    plan: BudgetPlan,
    names: dict[ModelKey, str],
    sizes: dict[ModelKey, int],
    histories: dict[ModelKey, gt.FitHistory],
    costs: dict[ModelKey, dict],
    guidance_scores: dict[ModelKey, int],
) -> dict:
    """The card's budget: the total, what synthesis and checkpoint selection were allotted of it, the split rule,
    and per model: training images, allotted part (FLOP parts are whole steps), steps, images, training FLOPs and
    seconds, selection FLOPs and seconds (guidance scores included), and the step whose weights were kept."""
    per_model = {
        names[key]: {
            "train_images": sizes[key],
            "allotted": plan.parts[key].amount,
            "allotted_kind": plan.parts[key].kind,
            "steps": h.steps,
            "real_batches": h.real_batches,
            "images_seen": h.images_seen,
            "flops": h.steps * costs[key]["step_flops"],
            "seconds": h.seconds,
            "selection_flops": selection_flops(costs[key], len(h.selection_step))
            + guidance_flops(costs[key], key in guidance_scores),
            "selection_seconds": h.selection_seconds,
            "selected_step": h.selected_step,
        }
        for key, h in histories.items()
    }
    keys = ("steps", "images_seen", "flops", "seconds", "selection_flops", "selection_seconds")
    spent = {key: sum(model[key] for model in per_model.values()) for key in keys}
    rule = GeneratorBudget.SPLIT_RULE if len(sizes) > 1 else "one model: the whole budget"
    return {
        "kind": budget.kind,
        "total": budget.amount,
        "reserved_for_synthesis": plan.reserved["synthesis"] if plan.reserved else None,
        "reserved_for_selection": plan.reserved["selection"] if plan.reserved else None,
        "split_rule": rule if sizes else "no model: the plan asks for no synthetic image",
        "per_model": per_model,
        "spent": spent,
    }


def generator_phases(card: dict, costs: dict[str, dict], images: dict[str, int], seconds: float) -> dict:
    """The run's generator phases from a card (its models by name): FLOPs and device-seconds of generator training,
    checkpoint selection and guidance choice included (a reused generator costs what training it did, flagged
    `reused`, with its cache folder's name as `generator` so a grid total counts it once), and of this synthesis
    (`images` per model, `seconds` timed). The quality step is not in them."""
    histories = card["histories"]
    guided = {name: len(record.get("curve", [])) for name, record in (card.get("guidance") or {}).items()}
    scores = {name: len(h.get("selection_step", [])) + guided.get(name, 0) for name, h in histories.items()}
    selection = {
        "flops": sum(
            selection_flops(costs[name], len(h.get("selection_step", []))) + guidance_flops(costs[name], name in guided)
            for name, h in histories.items()
        ),
        "seconds": sum(h.get("selection_seconds", 0.0) for h in histories.values()),
        "scores": scores,
    }
    return {
        "generator_training": {
            "flops": sum(h["steps"] * costs[name]["step_flops"] for name, h in histories.items()) + selection["flops"],
            "seconds": sum(h["seconds"] for h in histories.values()) + selection["seconds"],
            "selection": selection,
            "steps": {name: h["steps"] for name, h in histories.items()},
            "step_flops": {name: cost["step_flops"] for name, cost in costs.items()},
            "batch_size": {name: cost["batch_size"] for name, cost in costs.items()},
            "reused": "reused_from" in card,  # trained by an earlier cell: what it cost once, not spent again
            "generator": Path(card.get("reused_from") or card.get("saved_to") or "").name or None,
        },
        "synthesis": {
            "flops": sum(n * costs[name]["sample_flops_per_image"] for name, n in images.items()),
            "seconds": seconds,
            "images": sum(images.values()),
            "flops_per_image": {name: cost["sample_flops_per_image"] for name, cost in costs.items()},
        },
    }
