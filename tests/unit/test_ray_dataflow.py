"""How a Ray run is laid out: the plan's actor counts, and the stages' Ray Data options."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from orchestrator.distributed.dataflow import StageArgs, build_dataset, plan_for
from orchestrator.distributed.stages import Classify, Decode, Screen, Write
from orchestrator.enrichment import Enricher
from orchestrator.indexing import IndexOptions


class Recorder:
    """Stands in for a Ray Data dataset: records each map_batches call, runs nothing."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    def map_batches(self, **kwargs: Any) -> Recorder:
        self.stages.append(kwargs)
        return self


def laid_out(items: int) -> dict[type, dict[str, Any]]:
    dataset = Recorder()
    ray = SimpleNamespace(
        data=SimpleNamespace(
            from_items=lambda rows, override_num_blocks: dataset,
            ActorPoolStrategy=lambda min_size, max_size: ("pool", min_size, max_size),
        )
    )
    args = StageArgs({}, ("http://a:8000",), cast(Enricher, None), IndexOptions(chunk_size=2))
    plan = plan_for(8, endpoints=1, chunk_size=2)
    build_dataset(cast(Any, ray), [{"uri": str(i)} for i in range(items)], plan, args)
    return {kwargs["fn"]: kwargs for kwargs in dataset.stages}


def test_the_screen_runs_its_blocks_in_the_order_they_are_handed_to_it() -> None:
    # Ray Data's actors run queued blocks out of order unless told otherwise; the Screen
    # keeps the first copy of a photo only if it meets the sources in order.
    stages = laid_out(40)
    assert list(stages) == [Decode, Screen, Classify, Write]
    assert stages[Screen]["allow_out_of_order_execution"] is False
    assert stages[Screen]["compute"] == ("pool", 1, 1)
    assert all("allow_out_of_order_execution" not in stages[s] for s in (Decode, Classify, Write))


def test_no_stage_has_more_actors_than_there_are_blocks() -> None:
    stages = laid_out(3)  # one block of four rows
    assert {kwargs["compute"] for kwargs in stages.values()} == {("pool", 1, 1)}
    assert laid_out(40)[Decode]["compute"][2] > 1


def test_the_plan_gives_the_cores_left_by_the_light_stages_to_decoding() -> None:
    plan = plan_for(8, endpoints=2, chunk_size=16)
    assert (plan.classifiers, plan.writers, plan.block_rows) == (4, 2, 32)
    assert plan.decoders == 6  # 8 - (0.1 + 4 * 0.2 + 2 * 0.1) = 6.9
    one_core = plan_for(1, endpoints=1, chunk_size=8)
    assert one_core.decoders == 1
    assert 0 < one_core.decode_cpus < 1


def test_a_classifier_per_batch_to_keep_in_triton() -> None:
    def classifiers(endpoints: int, instances: int, in_flight: int = 0) -> int:
        return plan_for(16, endpoints, 32, instances, in_flight).classifiers

    assert classifiers(1, instances=1) == 2  # one batch on the wire while another runs
    assert classifiers(2, instances=2) == 4
    assert classifiers(1, instances=4) == 4  # a Triton with an instance per core
    assert classifiers(1, instances=4, in_flight=3) == 3  # DEEPTAG_INDEX_IN_FLIGHT
    assert plan_for(2, 1, 32, instances=8).classifiers == 2  # never more than the cores
