"""A trained policy as an MLflow pyfunc model: the policy, its feature specification and actions.

The pyfunc input is long-format: one row per (decision context, action) with the customer's
behavioural features, the action's features and whether the contact policy allows it; the
output gives, for each row, the policy's probability and expected net value. Serving loads the
native policy (``PolicyBundle.policy``) from the same artifact, to decide without a DataFrame.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from decisioning.actions import ActionSpace
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from decisioning.policy import DecisionContext, Policy

CONTEXT_COLUMN = "context_id"
ACTION_COLUMN = "action"
ELIGIBLE_COLUMN = "eligible"
COST_COLUMN = "cost"


@dataclass
class PolicyBundle:
    """What a registered model version holds."""

    policy: Policy
    objective_id: str
    objective_version: int
    action_keys: tuple[str, ...]
    attribute_names: tuple[str, ...] = ()
    learner: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def actions(self) -> ActionSpace:
        from decisioning.actions import Action

        return ActionSpace(tuple(Action.from_key(k) for k in self.action_keys))

    def save(self, path: Path) -> Path:
        path.write_bytes(pickle.dumps(self))
        return path

    @staticmethod
    def load(path: str | Path) -> PolicyBundle:
        bundle = pickle.loads(Path(path).read_bytes())
        if not isinstance(bundle, PolicyBundle):
            raise TypeError(f"{path} does not hold a policy bundle")
        return bundle


def contexts_from_frame(frame: pd.DataFrame, bundle: PolicyBundle) -> list[DecisionContext]:
    """Rebuild decision contexts from the long-format pyfunc input."""
    actions = bundle.actions
    out: list[DecisionContext] = []
    missing = [c for c in (CONTEXT_COLUMN, ACTION_COLUMN, ELIGIBLE_COLUMN) if c not in frame]
    missing += [c for c in (*BEHAVIOUR_FEATURES, *ACTION_FEATURES) if c not in frame]
    if missing:
        raise ValueError(f"policy input lacks columns: {', '.join(missing[:8])}")
    for cid, rows in frame.groupby(CONTEXT_COLUMN, sort=False):
        rows = rows.set_index(ACTION_COLUMN).reindex(list(actions.keys))
        if rows[ELIGIBLE_COLUMN].isna().any():
            absent = rows.index[rows[ELIGIBLE_COLUMN].isna()].tolist()
            raise ValueError(f"context {cid!r}: no row for actions {absent[:5]}")
        first = rows.iloc[0]
        eligible = rows[ELIGIBLE_COLUMN].to_numpy(dtype=bool).copy()
        eligible[0] = True
        out.append(
            DecisionContext(
                customer_id=str(cid),
                now=0.0,
                actions=actions,
                customer={f: float(first[f]) for f in BEHAVIOUR_FEATURES},
                attributes={a: first[a] for a in bundle.attribute_names if a in rows},
                action_features=rows[list(ACTION_FEATURES)].to_numpy(dtype=float),
                eligible=eligible,
                costs=rows[COST_COLUMN].to_numpy(dtype=float) if COST_COLUMN in rows else None,
            )
        )
    return out


def frame_from_context(context: DecisionContext, context_id: str = "0") -> pd.DataFrame:
    """The long-format pyfunc input of one decision context (the model's input example)."""
    n = len(context.actions)
    data: dict[str, Any] = {
        CONTEXT_COLUMN: [context_id] * n,
        ACTION_COLUMN: list(context.actions.keys),
        ELIGIBLE_COLUMN: context.eligible.astype(bool),
        COST_COLUMN: context.costs if context.costs is not None else np.zeros(n),
    }
    for f in BEHAVIOUR_FEATURES:
        data[f] = [context.customer[f]] * n
    for k, v in context.attributes.items():
        data[k] = [v] * n
    for j, f in enumerate(ACTION_FEATURES):
        data[f] = context.action_features[:, j]
    return pd.DataFrame(data)


class PolicyModel(PythonModel):
    """The pyfunc face of a policy bundle."""

    def load_context(self, context: Any) -> None:
        self.bundle = PolicyBundle.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        rows = []
        for ctx in contexts_from_frame(model_input, self.bundle):
            dist = self.bundle.policy.action_distribution(ctx)
            values = self.bundle.policy.expected_values(ctx)
            for i, key in enumerate(ctx.actions.keys):
                rows.append(
                    {
                        CONTEXT_COLUMN: ctx.customer_id,
                        ACTION_COLUMN: key,
                        "probability": float(dist[i]),
                        "expected_value": float(values[i]) if values is not None else np.nan,
                    }
                )
        return pd.DataFrame(rows)


def log_policy(
    bundle: PolicyBundle,
    *,
    example: DecisionContext,
    workdir: Path,
    registered_model_name: str | None = None,
) -> Any:
    """Log ``bundle`` as a pyfunc model in the active run (registered if a name is given)."""
    path = bundle.save(workdir / "bundle.pkl")
    example_frame = frame_from_context(example)
    model = PolicyModel()
    model.bundle = bundle
    output = model.predict(None, example_frame)
    signature = mlflow.models.infer_signature(example_frame, output)
    return mlflow.pyfunc.log_model(
        name="policy",
        python_model=PolicyModel(),
        artifacts={"bundle": str(path)},
        signature=signature,
        input_example=example_frame,
        registered_model_name=registered_model_name,
        code_paths=None,
    )


def load_bundle(model_uri: str) -> PolicyBundle:
    """The native policy bundle of a logged or registered model (``models:/name@champion``)."""
    model = mlflow.pyfunc.load_model(model_uri)
    python_model = model.unwrap_python_model()
    return python_model.bundle  # type: ignore[no-any-return]
