"""The Ray cluster a ``--ray`` run (or a ``mode: ray-data`` model) uses: one named by address, or a local one
on loopback started for the run.

``ray`` is imported only here and in the modules that use it (:mod:`evalkit.engine.ray_run`,
:mod:`evalkit.backends.vllm_ray_data`), and only when a run asks for Ray: ``import evalkit`` and every other
command never load it.

A local cluster binds every port to 127.0.0.1: Ray's node address defaults to the machine's own
interface address (``_node_ip_address="127.0.0.1"`` alone is turned back into it), so the process
environment says the node is single-machine (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by Ray when
it is imported) before Ray is imported, and the dashboard stays off.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from evalkit.errors import ConfigError, MissingExtraError

LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
INSTALL_HINT = "pip install 'evalkit-swap[ray]'"


@dataclass
class Cluster:
    """The cluster this process is connected to; ``started``: evalkit started it (and stops it)."""

    address: str
    started: bool
    connected: bool = True  # this process connected (and disconnects); False: the caller's own connection

    def info(self) -> dict[str, Any]:
        """What the run's provenance records: Ray's version, the nodes and their resources."""
        ray = import_ray()
        nodes = [{"node_id": n.get("NodeID"), "address": n.get("NodeManagerAddress"),
                  "hostname": n.get("NodeManagerHostname"), "alive": bool(n.get("Alive")),
                  "resources": {k: v for k, v in (n.get("Resources") or {}).items() if not k.startswith("node:")}}
                 for n in ray.nodes()]
        resources = {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
        return {"ray_version": ray.__version__, "address": self.address, "started_for_run": self.started,
                "nodes": nodes, "resources": resources}

    def close(self) -> None:
        """Disconnect; a cluster started for the run is stopped with it. A caller's own connection stays."""
        if self.connected:
            import_ray().shutdown()


def import_ray(loopback: bool = False) -> Any:
    """The ``ray`` module (``loopback``: first tell Ray it runs on this machine only, see the module docstring)."""
    if loopback:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"--ray needs Ray: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = "auto", temp_dir: str | None = None) -> Cluster:
    """Connect to ``address`` (``auto``: ``RAY_ADDRESS`` if set, else a local loopback cluster for this run).

    A process already connected (a library caller that ran ``ray.init``) keeps its connection.
    """
    target = os.environ.get("RAY_ADDRESS") if address in (None, "", "auto") else address
    ray = import_ray(loopback=not target)
    if ray.is_initialized():
        return Cluster(ray.get_runtime_context().gcs_address, started=False, connected=False)
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if target:
            ray.init(address=target, **common)
            return Cluster(target, started=False)
        if ray._private.ray_constants.ENABLE_RAY_CLUSTER:  # read when ray was imported
            raise ConfigError(f"a local Ray cluster must bind to 127.0.0.1 only, which needs {LOOPBACK_ONLY_ENV}=0 "
                              "before Ray is imported; set it, or start a cluster and pass its address to --ray")
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, _temp_dir=temp_dir, **common)
        return Cluster(ray.get_runtime_context().gcs_address, started=True)
    except ConnectionError as exc:
        raise ConfigError(f"--ray {target}: cannot connect to the Ray cluster: {exc}") from None
