"""The registry's champion rule: `@champion` is the best denoiser among the comparable, complete,
evaluated versions that beat PCA at their own code size.

Comparable means evaluated at the same noise level on the same test set (its digest). MLflow
has no compare-and-set for an alias, so each promotion tags its own version first, then sets
the alias to the best eligible version it can see and reads the result back until the two agree
(a write that collides with another inside MLflow is simply read back and retried). The current
champion is read after the list of versions, so its tags are the freshest a promotion has: a
promotion never replaces a champion that it can see is better. Whichever promotion writes last
has read every tag written before its write, so however many promotions finish together, on one
machine or several sharing a server, the alias ends on the best eligible version. The write and
the reading back are one critical section: SIGTERM or Ctrl-C waits until the alias is right.

A version is promoted only if its signature holds and its files are the ones it signs
(registry.verify): a version changed in the bucket after registration is refused, whatever its
tags say, and the alias never stays on one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mnist_ae.plumbing.signals import critical
from mnist_ae.tracking import registry
from mnist_ae.tracking.registry import COMPLETE, OUTPUTS_TAG, Decision

CHAMPION = "champion"
METRIC = "test_denoising_psnr"  # version tag: the denoising PSNR evaluate measured
BEATS_PCA = "beats_pca"  # version tag: "true" when it beats PCA at its own code size
COMPARABLE_BY = ("noise_std", "test_digest")  # version tags that must match to compare
MAX_ROUNDS = 20


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def comparable(a: ModelVersion, b: ModelVersion) -> bool:
    return all(a.tags.get(key) == b.tags.get(key) for key in COMPARABLE_BY)


def eligible(version: ModelVersion) -> bool:
    """Complete outputs, evaluated, better than PCA at its own code size."""
    return (
        version.tags.get(OUTPUTS_TAG) == COMPLETE
        and version.tags.get(BEATS_PCA) == "true"
        and METRIC in version.tags
    )


def _score(version: ModelVersion) -> tuple[float, int]:
    return float(version.tags[METRIC]), -int(version.version)  # a tie keeps the older version


def _why_not(version: ModelVersion, champion: ModelVersion | None) -> str:
    if version.tags.get(OUTPUTS_TAG) != COMPLETE:
        return "not promoted: the train stage did not complete this version's outputs"
    if version.tags.get(BEATS_PCA) != "true":
        return "not promoted: does not beat PCA at equal code size"
    if champion is not None and not comparable(version, champion):
        differ = ", ".join(
            f"{key} {version.tags.get(key)} vs {champion.tags.get(key)}"
            for key in COMPARABLE_BY
            if version.tags.get(key) != champion.tags.get(key)
        )
        return f"not promoted: not comparable with champion version {champion.version} ({differ})"
    if champion is not None:
        return (
            f"not promoted: champion version {champion.version} has "
            f"{float(champion.tags[METRIC]):.3f} dB >= {float(version.tags[METRIC]):.3f} dB"
        )
    return "not promoted"


Verify = Callable[[str, str], "str | None"]  # (name, version) -> why its files are refused


def promote(name: str, version: str, verify: Verify = registry.verify) -> Decision:
    """Move @champion to the best eligible version comparable with the current champion (or
    with `version` when there is none yet), whose signature and files check out, and say what
    became of `version`."""
    promotion = _Promotion(name, str(version), verify)
    with critical():
        for _ in range(MAX_ROUNDS):
            decision = promotion.round()
            if decision is not None:
                return decision
    raise MlflowException(f"@{CHAMPION} of {name} kept changing for {MAX_ROUNDS} rounds")


class _Promotion:
    def __init__(self, name: str, version: str, verify: Verify) -> None:
        self.client, self.name, self.version, self.verify = MlflowClient(), name, version, verify
        self.refused: dict[str, str] = {}  # version -> why its files must not be loaded
        self.checked: set[str] = set()

    def files_ok(self, version: str) -> bool:
        """Checked once per promotion: downloading a version costs a second or two."""
        if version not in self.checked:
            self.checked.add(version)
            problem = self.verify(self.name, version)
            if problem is not None:
                self.refused[version] = problem
        return version not in self.refused

    def round(self) -> Decision | None:
        """Read the registry and write the alias if it is not on the best version (then None:
        read it back), or say what became of `version`."""
        client, name, version = self.client, self.name, self.version
        versions = {str(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
        champion = _champion(client, name)  # read after the list: the freshest tags of all
        if champion is not None and str(champion.version) in versions:
            versions[str(champion.version)] = champion
        else:
            champion = None  # none yet, or its version was deleted
        mine = versions.get(version)
        if mine is None:
            return Decision(False, f"not promoted: version {version} is not in the registry")
        reference = champion if champion is not None and eligible(champion) else mine
        candidates = [v for v in versions.values() if eligible(v) and comparable(v, reference)]
        ranked = sorted(candidates, key=_score, reverse=True)
        best = next((v for v in ranked if self.files_ok(str(v.version))), None)
        if best is None:
            if champion is not None and str(champion.version) in self.refused:
                client.delete_registered_model_alias(name, CHAMPION)  # never on refused files
                return None
            return Decision(False, self.why_not(mine, champion))
        if champion is None or str(champion.version) != str(best.version):
            try:
                client.set_registered_model_alias(name, CHAMPION, str(best.version))
            except MlflowException:  # MLflow checks, then inserts: a writer at the same moment
                time.sleep(random.uniform(0.05, 0.3))  # wins the insert; read what it wrote
            return None  # read it back: another promotion may have written meanwhile
        if str(best.version) == version:
            return Decision(True, f"version {version} is @{CHAMPION}: {_score(best)[0]:.3f} dB")
        return Decision(False, self.why_not(mine, champion))

    def why_not(self, mine: ModelVersion, champion: ModelVersion | None) -> str:
        if self.version in self.refused:
            return f"not promoted: {self.refused[self.version]}"
        return _why_not(mine, champion)
