"""How a Ray run is laid out on Ray Data: actor pools, their CPUs, blocks, and the context.

::

    sources → Decode (1 CPU each, many) → Screen (one, in order) → [Analyse, one stage per
            analysis turned on] → Classify (a few per Triton endpoint) → Write (two) → the driver

Only the decoders are CPU-bound; the other stages wait on Triton or Elasticsearch, so they ask
for fractions of a CPU and the rest of the cluster's cores go to decoding.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from orchestrator.analysis.registry import enabled
from orchestrator.distributed.analyse import Analyse
from orchestrator.distributed.stages import Classify, Decode, Screen, Write
from orchestrator.enrichment import Enricher
from orchestrator.indexing import IndexOptions, batches_in_flight
from orchestrator.settings import Settings

#: CPUs the light stages ask for: they wait on the network, and asking little leaves the
#: cores to decoding (different amounts also keep Ray Data from fusing the stages).
SCREEN_CPUS = 0.1
CLASSIFY_CPUS = 0.2
ANALYSE_CPUS = 0.15
WRITE_CPUS = 0.1
#: Classify actors per Triton endpoint at least: one batch each at a time, so two keep a server
#: busy while the other's batch travels. More when the endpoints report more model instances.
CLASSIFIERS_PER_ENDPOINT = 2
WRITERS = 2
#: Batches per block of sources: small blocks reach every decoder and keep memory per task low.
BATCHES_PER_BLOCK = 2


@dataclass(frozen=True)
class RayPlan:
    """How many actors of each stage, and their CPUs, for a cluster of ``cpus``."""

    decoders: int
    decode_cpus: float
    classifiers: int
    writers: int
    block_rows: int


def plan_for(
    cpus: float, endpoints: int, chunk_size: int, instances: int = 0, in_flight: int = 0
) -> RayPlan:
    """Fill the cluster's CPUs with decoders once the light stages have theirs (pure).

    A classifier per batch to keep in Triton: ``in_flight`` if set (``DEEPTAG_INDEX_IN_FLIGHT``),
    else one per model instance the endpoints report, at least two per endpoint, as the
    single-process indexer does.
    """
    batches = batches_in_flight(in_flight, instances, least=CLASSIFIERS_PER_ENDPOINT * endpoints)
    classifiers = max(1, min(batches, math.floor(cpus)))
    light = SCREEN_CPUS + classifiers * CLASSIFY_CPUS + WRITERS * WRITE_CPUS
    spare = cpus - light
    # A one-core machine still gets a decoder: a share of the core rather than none.
    decode_cpus = 1.0 if spare >= 1 else max(spare, 0.1)
    return RayPlan(
        decoders=max(1, math.floor(spare)),
        decode_cpus=decode_cpus,
        classifiers=classifiers,
        writers=WRITERS,
        block_rows=chunk_size * BATCHES_PER_BLOCK,
    )


@dataclass(frozen=True)
class StageArgs:
    """What the stages' actors are built with: plain data, pickled once per pool."""

    settings: Mapping[str, Any]  # Settings.model_dump() of the driver
    endpoints: tuple[str, ...]
    enricher: Enricher
    options: IndexOptions


def build_dataset(
    ray: ModuleType, items: list[dict[str, str]], plan: RayPlan, args: StageArgs
) -> Any:
    """The lazy dataset of the run: one outcome row per source, in source order."""
    settings, urls, options = dict(args.settings), list(args.endpoints), args.options
    blocks = max(1, math.ceil(len(items) / plan.block_rows))

    def stage(
        udf: type, most: int, cpus: float, *constructor: Any, in_order: bool = False
    ) -> dict[str, Any]:
        # Ray Data refuses more actors than there are blocks to give them.
        most = max(1, min(most, blocks))
        kwargs = {
            "fn": udf,
            "fn_constructor_args": (settings, *constructor),
            "batch_size": options.chunk_size,
            "batch_format": "numpy",
            "compute": ray.data.ActorPoolStrategy(min_size=1, max_size=most),
            "num_cpus": cpus,
        }
        if in_order:
            # Ray Data lets an actor run its queued blocks in whatever order their inputs
            # arrive, and preserve_order only reorders what leaves the stage: the Screen must
            # run them as submitted, in source order, or a later copy of a photo is kept.
            kwargs["allow_out_of_order_execution"] = False
        return kwargs

    metadata = dict(options.metadata)
    analyses = enabled(Settings.model_validate(settings))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    for kwargs in (
        stage(Decode, plan.decoders, plan.decode_cpus, urls),
        stage(Screen, 1, SCREEN_CPUS, options.reindex, in_order=True),
        *(stage(Analyse, plan.classifiers, ANALYSE_CPUS, urls, a.name) for a in analyses),
        stage(
            Classify, plan.classifiers, CLASSIFY_CPUS, urls, args.enricher, options.best, metadata
        ),
        stage(Write, plan.writers, WRITE_CPUS),
    ):
        dataset = dataset.map_batches(**kwargs)
    return dataset


@contextmanager
def quiet_data_context(ray: ModuleType) -> Iterator[Any]:
    """Ray Data configured for this run (order kept, our exceptions, no bars), then restored."""
    context = ray.data.DataContext.get_current()
    changes = {
        "enable_progress_bars": False,
        "print_on_execution_start": False,
        "enable_auto_log_stats": False,
        # A stage's OutageTooLong reaches the driver as itself, not as a UserCodeException.
        "raise_original_map_exception": True,
    }
    before = {name: getattr(context, name) for name in changes}
    order_before = context.execution_options.preserve_order
    data_log = logging.getLogger("ray.data")
    level_before = data_log.level
    for name, value in changes.items():
        setattr(context, name, value)
    # Blocks leave each stage in source order, so the Screen is handed them in that order.
    context.execution_options.preserve_order = True
    # Ray Data logs a failed stage with its whole traceback; the driver reports it in one line.
    data_log.setLevel(logging.CRITICAL)
    try:
        yield context
    finally:
        for name, value in before.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = order_before
        data_log.setLevel(level_before)
