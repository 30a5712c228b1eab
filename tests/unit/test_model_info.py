from typing import Any

import pytest

from orchestrator.triton.model_info import instance_count


@pytest.mark.parametrize(
    ("config", "instances"),
    [
        ({}, 1),  # a config without groups: Triton runs one
        ({"instance_group": [{"kind": "KIND_CPU", "count": 2}]}, 2),
        # Triton's completed config lists the GPUs a group runs on: count is per GPU.
        ({"instance_group": [{"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]}]}, 4),
        (
            {
                "instance_group": [
                    {"kind": "KIND_GPU", "count": 1, "gpus": [0]},
                    {"kind": "KIND_CPU", "count": 3},
                ]
            },
            4,
        ),
    ],
)
def test_the_batches_a_server_runs_at_once_are_read_from_its_config(
    config: dict[str, Any], instances: int
) -> None:
    assert instance_count(config) == instances
