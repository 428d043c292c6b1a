"""The MLflow registry: where policies are versioned, and the champion/challenger aliases.

Each objective's policies are registered under the objective's id. The ``champion`` alias is
what the service serves; a candidate that does not clear the promotion gate is aliased
``challenger``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy
from decisioning.settings import Settings
from models.baselines import WaterfallPolicy
from models.compiled import compile_policy
from models.packaging import PolicyBundle, load_bundle

CHAMPION = "champion"
CHALLENGER = "challenger"
FALLBACK_VERSION = "fallback:waterfall"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' tracking URI (a local store in the data dir by default)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_tracking_uri)
    return MlflowClient()


def experiment_for(name: str, settings: Settings) -> str:
    """The id of the MLflow experiment ``name``, created with artifacts in the data dir."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = settings.artifact_dir
    location.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(name, artifact_location=location.as_uri()))


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version that ``alias`` points to for model ``name``, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Promotion:
    """What the promotion gate decided, and why."""

    version: str
    alias: str
    promoted: bool
    reason: str


def gate(
    *,
    candidate_ci_low: float,
    champion_value: float | None,
    candidate_value: float | None = None,
    fallback_value: float | None = None,
    force: bool = False,
) -> tuple[bool, str]:
    """Whether a candidate replaces the champion: its DR lower bound beats the champion's DR.

    With no champion yet, the rule-based fallback serves: the candidate replaces it when its DR
    estimate beats the fallback's (when both are known).
    """
    if force:
        return True, "forced"
    if champion_value is None:
        if candidate_value is None or fallback_value is None:
            return True, "no champion yet"
        if candidate_value > fallback_value:
            return True, (
                f"no champion yet; DR {candidate_value:.4f} beats the rule-based fallback's "
                f"DR {fallback_value:.4f}"
            )
        return False, (
            f"no champion yet, but DR {candidate_value:.4f} does not beat the rule-based "
            f"fallback's DR {fallback_value:.4f}: the fallback keeps serving"
        )
    if candidate_ci_low > champion_value:
        return True, (
            f"DR lower bound {candidate_ci_low:.4f} beats the champion's DR {champion_value:.4f}"
        )
    return False, (
        f"DR lower bound {candidate_ci_low:.4f} does not beat the champion's DR "
        f"{champion_value:.4f}"
    )


def promote(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    candidate_ci_low: float,
    champion_value: float | None,
    candidate_value: float | None = None,
    fallback_value: float | None = None,
    force: bool = False,
) -> Promotion:
    """Apply the gate: alias ``version`` champion, or challenger if it does not clear it."""
    promoted, reason = gate(
        candidate_ci_low=candidate_ci_low,
        champion_value=champion_value,
        candidate_value=candidate_value,
        fallback_value=fallback_value,
        force=force,
    )
    alias = CHAMPION if promoted else CHALLENGER
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "promotion", reason)
    return Promotion(version, alias, promoted, reason)


def force_promote(client: MlflowClient, name: str, version: str) -> Promotion:
    """Make ``version`` the champion without the gate (``decisioning promote --force``)."""
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion", "forced")
    return Promotion(version, CHAMPION, True, "forced")


class ChampionPolicies:
    """Each objective's champion from the registry, with the rule-based fallback.

    ``reload()`` swaps in the current champions atomically: a decision in flight keeps the
    policy it started with, none is dropped.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._served: dict[str, ServedPolicy] = {}
        self._fallback = ServedPolicy(WaterfallPolicy(), FALLBACK_VERSION, fallback=True)
        self._errors: dict[str, str] = {}
        self._names: set[str] = set()

    def policy_for(self, objective: Objective) -> ServedPolicy:
        served = self._served.get(objective.id)
        if served is not None:
            return served
        if objective.id not in self._names:
            self._load(objective.id)
            served = self._served.get(objective.id)
            if served is not None:
                return served
        return self._fallback

    def _load(self, name: str) -> None:
        with self._lock:
            self._names.add(name)
            try:
                client = connect(self.settings)
                version = alias_version(client, name, CHAMPION)
                if version is None:
                    return
                bundle = load_bundle(f"models:/{name}@{CHAMPION}")
                if self.settings.compile_models:
                    compile_policy(bundle.policy, self.settings.compiled_dir)
                served = ServedPolicy(bundle.policy, f"{name}/{version}", fallback=False)
                self._served = {**self._served, name: served}
                self._errors.pop(name, None)
            except (MlflowException, OSError, ValueError) as err:
                self._errors[name] = str(err)

    def reload(self) -> dict[str, str]:
        """Load every known objective's current champion; the model version each now serves."""
        for name in list(self._names | set(self._served)):
            self._names.discard(name)
            self._load(name)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """Objective id -> the model version served (``fallback:waterfall`` without a champion)."""
        out: dict[str, Any] = {name: FALLBACK_VERSION for name in self._names}
        out.update({name: s.model_version for name, s in self._served.items()})
        return out

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._errors)


def load_policy_bundle(name: str, alias: str = CHAMPION) -> PolicyBundle:
    """The bundle behind ``models:/name@alias``."""
    return load_bundle(f"models:/{name}@{alias}")
