"""The closed-loop experiment: the service deciding for a simulated world, arm by arm.

``run_experiment`` (what ``decisioning experiment`` calls) runs it and writes its report; see
:mod:`experiments.closed_loop.loop`.
"""

from experiments.closed_loop.arms import ARMS, OraclePolicy, StaticPolicies, TruthBook
from experiments.closed_loop.loop import ExperimentConfig, run, run_experiment
from experiments.closed_loop.result import ExperimentResult

__all__ = [
    "ARMS",
    "ExperimentConfig",
    "ExperimentResult",
    "OraclePolicy",
    "StaticPolicies",
    "TruthBook",
    "run",
    "run_experiment",
]
