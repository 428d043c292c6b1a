"""The service's settings, read once at start-up from the environment and injected everywhere."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives and how the service behaves; every field can be set as ``DECISIONING_<NAME>``.

    With nothing set, everything is embedded under ``data_dir``: a SQLite database and a local
    MLflow store.
    """

    model_config = SettingsConfigDict(env_prefix="DECISIONING_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in data_dir"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default: local store in data_dir"
    )
    #: API keys as "role:key" pairs, comma-separated; roles: marketer, orchestrator,
    #: data_scientist, admin. Keys are hashed at start-up and never kept in clear.
    api_keys: SecretStr = SecretStr("")
    batch_limit: int = Field(
        default=10_000, ge=1, description="largest batch of decisions or events"
    )
    decisions_per_turn: int = Field(
        default=64,
        ge=1,
        description="calls to POST /v1/decisions that arrive together are decided together, "
        "up to this many per turn of the event loop (1: each call alone)",
    )
    arbitration_window_hours: float = Field(default=24.0, gt=0)
    online_learning: bool = False
    attribution_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often rewards are attributed from outcome events"
    )
    hot_store_seconds: float = Field(
        default=60.0,
        ge=0,
        description="the service keeps customer states and scheduled sends in memory; writes "
        "by other processes are seen after this many seconds (0: read the database each time)",
    )
    decision_log_process: bool = Field(
        default=True,
        description="with a SQLite file, the service inserts its decision log from a helper "
        "process, leaving the interpreter to the deciding threads (PostgreSQL: no effect)",
    )
    compile_models: bool = Field(
        default=True,
        description="compile served tree models to native code (same predictions, faster); "
        "the machine code is cached in data_dir/compiled",
    )
    seed: int = 0

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'decisioning.db').resolve()}"

    @property
    def resolved_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def compiled_dir(self) -> Path:
        return (self.data_dir / "compiled").resolve()

    @property
    def artifact_dir(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()
