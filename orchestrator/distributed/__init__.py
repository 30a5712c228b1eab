"""Bulk indexing on a cluster: ``deeptag index --engine ray``.

Importing this package does not import Ray (the default install has none); ``run_on_ray``
does, and says which extra to install when it is missing.
"""

from orchestrator.distributed.ray_index import RayRunFailed, run_on_ray

__all__ = ["RayRunFailed", "run_on_ray"]
