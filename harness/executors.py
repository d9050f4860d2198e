"""Where the model work of an evaluation runs: in this process (``local``), or on a Ray cluster
(``prmh eval --executor ray``; ``pip install 'prmh[ray]'``).

With Ray, every generator and PRM of the plan becomes a proxy in this process and ``actors``
Ray actors elsewhere, each of which builds the real component once (its model loaded once per
actor, with ``gpus`` GPUs; no CPU is reserved, an actor runs one thread) and serves its work
units: each batch the engine sends (a generation batch, a scoring batch, a step search's round
for every problem) is split into one contiguous chunk per actor and the answers are put back
in order. Everything else (tasks,
searches, grading, the store) stays in this process, the only writer of the store, so a killed
run resumes from what it stored and the results are those of the local executor: components
are built from the same names and options, and each sample and score depends only on its own
request.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Sequence
from typing import Any

from prmh.errors import PrmhError

SERVED = {"generator": "sample", "prm": "score"}
ATTRIBUTES = ("identity_extra", "reuses_prefixes")


class ComponentWorker:
    """A Ray actor's body: one component, built from its registry name and options."""

    def __init__(self, kind: str, name: str, args: dict[str, Any], threads: int):
        from prmh.registry import load_registry
        from prmh.threads import configure

        configure(threads)
        self.component = load_registry().create(kind, name, args)
        self.method = SERVED[kind]

    def attributes(self) -> dict[str, Any]:
        instance = self.component.instance
        return {k: getattr(instance, k) for k in ATTRIBUTES if hasattr(instance, k)}

    def serve(self, requests: list[Any]) -> list[Any]:
        return getattr(self.component.instance, self.method)(requests)


class Proxy:
    """The component as the engine sees it: each batch split over the actors, in order."""

    def __init__(self, workers: list[Any]):
        import ray

        self._ray, self._workers = ray, workers
        # asked for now, read on first use: every component's actors start at once
        self._pending = workers[0].attributes.remote()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if "_attributes" not in self.__dict__:
            self._attributes = self._ray.get(self._pending)
        if name in self._attributes:
            return self._attributes[name]
        raise AttributeError(name)

    def _serve(self, requests: Sequence[Any]) -> list[Any]:
        requests = list(requests)
        size = -(-len(requests) // len(self._workers)) if requests else 0
        chunks = [requests[i : i + size] for i in range(0, len(requests), size or 1)]
        answers = [w.serve.remote(c) for w, c in zip(self._workers, chunks, strict=False)]
        return [x for answer in self._ray.get(answers) for x in answer]


class GeneratorProxy(Proxy):
    def sample(self, requests: Sequence[Any]) -> list[Any]:
        return self._serve(requests)


class PRMProxy(Proxy):
    def score(self, requests: Sequence[Any]) -> list[Any]:
        return self._serve(requests)


def check_sizes(actors: int, gpus: float) -> None:
    """Actors per model and GPUs per actor a Ray cluster can grant (nan and inf are not)."""
    if actors < 1 or not 0 <= gpus < math.inf:
        raise PrmhError(
            f"--ray-actors must be at least 1 and --ray-gpus a number of at least 0, not "
            f"{actors} and {gpus}."
        )


class RayRegistry:
    """A registry whose generators and PRMs are proxies to Ray actors; options are checked
    here, the components are built in the actors."""

    def __init__(self, inner: Any, actors: int = 1, gpus: float = 0.0, threads: int = 1):
        import ray

        check_sizes(actors, gpus)
        self._inner, self._actors, self._threads = inner, actors, threads
        # no CPU reserved: the actors wait on the engine, and each runs one thread
        self._remote = ray.remote(num_cpus=0, num_gpus=gpus)(ComponentWorker)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create(self, kind: str, name: str, args: dict[str, Any] | None = None) -> Any:
        if kind not in SERVED:
            return self._inner.create(kind, name, args)
        from prmh.registry import Component

        entry = self._inner.get(kind, name)
        bound = entry.bind(args or {})
        workers = [
            self._remote.remote(kind, name, bound, self._threads) for _ in range(self._actors)
        ]
        proxy = (GeneratorProxy if kind == "generator" else PRMProxy)(workers)
        return Component(entry=entry, args=bound, instance=proxy)


def start(address: str | None) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local one; True if started."""
    try:
        import ray
    except ImportError as e:
        raise PrmhError("--executor ray needs Ray: pip install 'prmh[ray]'.") from e
    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise PrmhError(f"cannot reach the Ray cluster at {address!r}: {e}") from e
    return True


def _check_reachable(address: str) -> None:
    """An address naming a host and port (``host:port``, ``ray://host:port``) must take a TCP
    connection within 10 s: Ray itself retries an unreachable one for minutes, printing as it
    goes. Other addresses (``auto``, ``local``) are Ray's to resolve."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        raise PrmhError(
            f"cannot reach the Ray cluster at {address!r} ({e.strerror or e}): start one there "
            "(`ray start --head`) or fix --ray-address."
        ) from None


def stop() -> None:
    import ray

    ray.shutdown()
