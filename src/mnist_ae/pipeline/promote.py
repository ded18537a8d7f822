"""The promote stage's registry part: the version tagged with what evaluate measured and whether
it beats PCA, then the registrar runs the champion rule (tracking.champion) on @champion, and
the version's model card is completed with the scores and the decision."""

from __future__ import annotations

from typing import Any

from mnist_ae.analysis.tasks import TASKS
from mnist_ae.tracking import champion, model_card, registrar, registry
from mnist_ae.tracking.run_record import RunRecord


def evaluation_tags(
    evaluation: dict[str, Any], beats_pca: bool, noise_std: float, test_digest: str
) -> dict[str, Any]:
    """The version's tags the champion rule reads: test scores, PCA verdict, what compares."""
    scores = {f"test_{t}_{k}": round(v, 6) for t in TASKS for k, v in evaluation[t].items()}
    return scores | {
        champion.BEATS_PCA: str(beats_pca).lower(),
        "noise_std": noise_std,
        "test_digest": test_digest,
    }


def promote(
    record: RunRecord,
    tags: dict[str, Any],
    evaluation: dict[str, Any],
    pca: dict[str, float],
    anomaly: dict[str, Any],
) -> registry.Decision:
    """Tag the training's version, let the registrar's champion rule decide, then complete the
    version's model card with evaluate's scores, PCA's at the same code size, the anomaly
    figures and the decision."""
    name, version = record.registered_model, record.version
    registry.tag_version(name, version, tags)
    decision = registrar.for_store(champion.promote).promote(name, version)
    section = model_card.promote_section(
        evaluation, pca, anomaly, decision.why, str(tags["test_digest"])
    )
    registry.describe(name, version, lambda card: model_card.completed(card, section))
    return decision
