"""The domain core of the decisioning service: objectives, actions, customer view, guardrails.

It imports no web framework and no MLflow: the same code serves training, serving and
experiments.
"""

__version__ = "0.1.0"
