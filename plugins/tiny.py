"""The tiny world: a generator and PRMs trained on ``arith`` by ``recipes/tiny/build.sh`` and
shipped in the package (``prmh/plugins/tiny_world``), so ``prmh eval`` runs real neural models
through the same code paths as a 7B PRM on a CPU, with no download.

- generator ``tiny``: a 4-layer Qwen2 LM (0.7M parameters) fine-tuned on the train split's gold
  solutions; it makes real arithmetic slips.
- PRM ``tiny``: an implicit PRM, the same LM trained further (policy) against the generator
  (reference), its scale fitted on Monte Carlo step labels (``prmh train --head implicit``).
- PRM ``tiny-calibrated``: the same PRM with quantile outputs from ``prmh calibrate``, for the
  instance-adaptive searches (``bon-ias``, ``beam-ias``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from prmh import hookimpl
from prmh.errors import PrmhError

WORLD = Path(__file__).parent / "tiny_world"
# The tiny world runs on the CPU wherever it runs, so a bare `prmh eval` gives the README's
# numbers on a GPU machine too (-G device=cuda -P device=cuda moves it, in bf16 by default).
GENERATOR_OPTIONS = {"temperature": 0.7, "max_new_tokens": 160, "batch_size": 128, "device": "cpu"}
PRM_OPTIONS = {"device": "cpu"}


def _checkpoint(name: str, marker: str) -> Path:
    path = WORLD / name
    if not (path / marker).is_file():
        raise PrmhError(
            f"the tiny world's {name} checkpoint is missing from {WORLD}; rebuild it with "
            "recipes/tiny/build.sh (see recipes/tiny/README.md)."
        )
    return path


class Shipped:
    """A registered factory with a shipped checkpoint preset; the checkpoint is looked up (and
    a PRM's saved options read) only when the component is built or its options listed."""

    def __init__(self, kind: str, name: str, preset: dict[str, Any] | None = None):
        self.kind, self.name, self.preset = kind, name, preset or {}

    def _target(self) -> tuple[Any, dict[str, Any]]:
        if self.kind == "generator":
            from prmh.plugins.generators.hf import HFGenerator

            return HFGenerator, {"model": str(WORLD / self.name), **self.preset}
        from prmh.plugins.prms.factories import implicit
        from prmh.prm_dirs import PRM_CONFIG_FILE, read_prm_config

        path = _checkpoint(self.name, PRM_CONFIG_FILE)
        options = read_prm_config(path).get("options", {})
        model = (path / options.pop("model", ".")).resolve()  # the shipped copy it shares
        return implicit, {**options, "model": str(model), **self.preset}

    def __call__(self, **options: Any) -> Any:
        import importlib.util

        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise PrmhError(
                f"the tiny world's {self.kind}: needs the hf extra ({missing[0]} is missing): "
                "pip install torch==2.13.0 && pip install 'prmh[hf]'. Or run the simulated "
                "world: prmh eval --world sim."
            )
        if self.kind == "generator":
            _checkpoint(self.name, "config.json")
        factory, preset = self._target()
        args = {**preset, **options}
        from prmh.plugins.hf_models import auto_precision

        precision = auto_precision(args.get("device", "auto"), args.get("dtype", "auto"))
        known = {"identity_extra": {"weights": self._fingerprint(args), **precision}}
        if self.kind == "prm":
            known["reuses_prefixes"] = args.get("prefix_cache_tokens", 65536) > 0
        return Deferred(lambda: factory(**args), known)

    def _fingerprint(self, args: dict[str, Any]) -> str:
        """What the built component's ``identity_extra`` will say, without building it."""
        from prmh.plugins.hf_models import resolve_checkpoint

        if self.kind == "generator":
            return resolve_checkpoint(args["model"], args.get("revision"))[1]
        from prmh.plugins.prms.implicit import checkpoints

        scale, bias = args.get("scale", (1.0,)), args.get("bias", (0.0,))
        scale = [scale] if isinstance(scale, int | float) else scale
        bias = [bias] if isinstance(bias, int | float) else bias
        return checkpoints(args["model"], args["reference"], args.get("revision"), scale, bias)[2]

    @property
    def __wrapped__(self) -> Any:  # whose annotations type the options (prmh.options)
        return self._target()[0]

    @property
    def __signature__(self) -> inspect.Signature:
        factory, preset = self._target()
        signature = inspect.signature(factory)
        return signature.replace(
            parameters=[
                p.replace(default=preset[p.name]) if p.name in preset else p
                for p in signature.parameters.values()
                if p.name != "self"
            ]
        )


class Deferred:
    """A component built on first use, so a run that finds everything in the store never
    imports torch or loads a model. What is ``known`` before (``identity_extra``, the cache
    keys' fingerprint of the weights; a PRM's ``reuses_prefixes``) is the built component's own."""

    def __init__(self, build: Any, known: dict[str, Any]):
        self._build, self._built, self._known = build, None, known
        for name, value in known.items():
            setattr(self, name, value)

    def built(self) -> Any:
        if self._built is None:
            self._built = self._build()
            for name, value in self._known.items():
                if getattr(self._built, name, None) != value:
                    raise PrmhError(f"a tiny-world component's {name} changed while building it.")
        return self._built

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.built(), name)


@hookimpl
def prmh_register_generator(register):
    register(
        "tiny",
        Shipped("generator", "generator", GENERATOR_OPTIONS),
        description="The tiny world's arith generator (4-layer Qwen2, shipped, CPU)",
        version="1",
        speed_args=("device", "prefix_cache_tokens", "attention"),
    )


@hookimpl
def prmh_register_prm(register):
    register(
        "tiny",
        Shipped("prm", "prm", PRM_OPTIONS),
        description="The tiny world's implicit PRM on arith (shipped, CPU)",
        version="1",
        speed_args=("device", "max_tokens_per_batch", "prefix_cache_tokens", "attention"),
    )
    register(
        "tiny-calibrated",
        Shipped("prm", "prm-calibrated", PRM_OPTIONS),
        description="The tiny PRM with calibrated quantiles (for bon-ias, beam-ias)",
        version="1",
        speed_args=("device", "max_tokens_per_batch", "prefix_cache_tokens", "attention"),
    )
