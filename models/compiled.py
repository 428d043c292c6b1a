"""A LightGBM model compiled to native code (lleaves): the same predictions, several times faster.

LightGBM walks its trees through a generic interpreter behind a ctypes call whose set-up costs
more than scoring one customer's actions. lleaves compiles the trees to machine code with LLVM;
a served model is compiled once, cached on disk under a key of the model and the host, and
checked against LightGBM on sample rows before it replaces it. Anything that goes wrong leaves
the model on LightGBM, which stays the reference.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
_DOUBLES = ctypes.POINTER(ctypes.c_double)


def _pointer(address: int) -> Any:
    return ctypes.cast(address, _DOUBLES)


#: rows from which a compiled prediction is split over every core
PARALLEL_ROWS = 2_000
#: largest difference from LightGBM's own prediction a compiled model may show
TOLERANCE = 1e-9


class CompiledTrees:
    """A booster's trees as native code; ``predict(x)`` equals ``booster.predict(x)``."""

    def __init__(self, model: Any, key: str) -> None:
        if model.num_model_per_iteration() != 1:
            raise ValueError("only one prediction per row (binary or regression) is compiled")
        self._model, self.key = model, key
        self.n_features = int(model.num_feature())
        # the compiled function itself: lleaves' own predict costs more than a customer's rows
        self._entry = model._c_entry_func

    @classmethod
    def compile(cls, booster: Any, cache_dir: str | Path | None = None) -> CompiledTrees | None:
        """The booster compiled, or None (with the reason logged) when it cannot be.

        ``cache_dir`` keeps the machine code between processes (a temporary directory when
        None); the compiled model is checked against the booster on random rows first.
        """
        try:
            import lleaves
            import llvmlite.binding as llvm
        except ImportError as err:  # an optional speed-up: LightGBM scores without it
            log.info("model compilation unavailable (%s); scoring with LightGBM", err)
            return None
        from importlib.metadata import version

        text = booster.model_to_string()
        host = (version("lleaves"), version("llvmlite"), llvm.get_host_cpu_name(),
                llvm.get_host_cpu_features().flatten())  # fmt: skip
        key = hashlib.sha256("\0".join((text, *host)).encode()).hexdigest()[:24]
        folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
        try:
            folder.mkdir(parents=True, exist_ok=True)
            model = _load_or_compile(lleaves, text, folder, key)
            compiled = cls(model, key)
            compiled.check(booster)
        except Exception as err:  # noqa: BLE001 - any failure keeps LightGBM, which is exact
            log.warning("model %s not compiled (%s); scoring with LightGBM", key, err)
            return None
        return compiled

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``x`` (n, n_features), on every core for large ``x``."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"rows must have {self.n_features} features, got shape {x.shape}")
        n = len(x)
        if n >= PARALLEL_ROWS:
            return np.asarray(self._model.predict(x, n_jobs=os.cpu_count() or 1), dtype=float)
        out = np.empty(n, dtype=np.float64)
        # pointers cast from the raw addresses: ``ndarray.ctypes.data_as`` would leave a
        # reference cycle behind every call, for the garbage collector to find
        self._entry(_pointer(x.ctypes.data), _pointer(out.ctypes.data), 0, n)
        return out

    def check(self, booster: Any, rows: int = 256, seed: int = 0) -> None:
        """Raise ValueError unless the compiled trees predict what the booster does."""
        rng = np.random.default_rng(seed)
        x = rng.normal(0.0, 3.0, size=(rows, self.n_features))
        x[: rows // 4] = np.round(x[: rows // 4])  # integers and zeros, as counts and flags are
        x[rows // 4 : rows // 2] = rng.integers(0, 2, size=(rows // 2 - rows // 4, self.n_features))
        expected = np.asarray(booster.predict(x, num_threads=1), dtype=float)
        got = self.predict(x)
        worst = float(np.max(np.abs(expected - got))) if rows else 0.0
        if not worst <= TOLERANCE:
            raise ValueError(f"compiled predictions differ from LightGBM's by up to {worst:.3g}")

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("compiled trees are native code: compile the model again where it runs")


def _load_or_compile(lleaves: Any, text: str, folder: Path, key: str) -> Any:
    """The lleaves model for ``text``, from ``folder/key.so`` or compiled and saved there.

    LLVM aborts the process on a damaged object file, so a cached file is loaded only when its
    SHA-256 matches the one written next to it; any other is compiled again.
    """
    cached, digest = folder / f"{key}.so", folder / f"{key}.sha256"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.txt"
        source.write_text(text)
        model = lleaves.Model(model_file=str(source))
        if _intact(cached, digest):
            model.compile(cache=str(cached))
            return model
        # compiled to a file of our own, then renamed: a concurrent reader never sees half of it
        partial = Path(tmp) / "model.so"
        model.compile(cache=str(partial))
        own = folder / f"{key}.{os.getpid()}"
        shutil.copyfile(partial, own)
        Path(f"{own}.sha256").write_text(_sha256(own))
        os.replace(own, cached)
        os.replace(f"{own}.sha256", digest)
        return model


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _intact(cached: Path, digest: Path) -> bool:
    try:
        return digest.read_text().strip() == _sha256(cached)
    except OSError:
        return False


def compile_policy(policy: Any, cache_dir: str | Path | None = None) -> bool:
    """Compile the tree models of a policy that has some (its ``compile`` method); True when
    compiled, False for a policy without trees or when compilation failed."""
    compile_trees = getattr(policy, "compile", None)
    return bool(compile_trees(cache_dir)) if compile_trees is not None else False
