"""The learners: bandit policy, outcome and propensity models, baselines, and their packaging."""
