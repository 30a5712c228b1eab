import time

import pytest

from orchestrator.errors import NotAnImage, ServiceNotFound
from orchestrator.metrics import Metrics
from orchestrator.photo import Camera, PhotoMetadata, Place
from orchestrator.responses import error_response, predict_response
from orchestrator.server.services import (
    PredictCall,
    ServiceSpec,
    ServiceStats,
    covered_ms,
    service_json,
)
from orchestrator.types import ImageSource, ItemFailure, Label, Prediction, SourceKind


def source(uri: str) -> ImageSource:
    return ImageSource(uri, SourceKind.URL, uri)


def test_predict_response_has_deepdetect_shape_with_last_markers() -> None:
    outcomes = [
        Prediction(
            source("http://x/a.jpg"),
            (Label("n07920052 espresso", 0.951234567), Label("n03063599 coffee mug", 0.02)),
            640,
            480,
            "ab" * 32,
        ),
        ItemFailure(
            source("http://x/b.txt"), NotAnImage("http://x/b.txt: content is not an image")
        ),
    ]
    response = predict_response(outcomes, "imageserv", 12.5)
    assert response["status"] == {
        "code": 200,
        "msg": "OK",
        "failed": 1,
        "dd_msg": "1 of 2 images could not be tagged",
    }
    assert response["head"] == {"method": "/predict", "service": "imageserv", "time": 12.5}
    first, second = response["body"]["predictions"]
    assert first["classes"] == [
        {"cat": "n07920052 espresso", "prob": 0.951235},
        {"cat": "n03063599 coffee mug", "prob": 0.02, "last": True},
    ]
    assert "last" not in first
    assert second["last"] is True
    assert second["error"]["code"] == 415
    assert "http://x/b.txt" in second["error"]["msg"]


def test_error_response_is_deepdetect_status_shape() -> None:
    body = error_response(ServiceNotFound("service 'nope' does not exist"))
    assert body == {
        "status": {
            "code": 404,
            "msg": "NotFound",
            "dd_code": 1002,
            "dd_msg": "Service Not Found: service 'nope' does not exist",
        }
    }


def test_label_words_drop_the_wordnet_id() -> None:
    assert Label("n02346627 porcupine, hedgehog", 0.5).words == "porcupine, hedgehog"
    assert Label("custom label", 0.5).words == "custom label"


def test_service_stats_have_deepdetect_names_and_units() -> None:
    stats = ServiceStats()
    before = stats.service_stats()
    # As DeepDetect: counts start at 0, averages at -1 until the first call.
    assert before["predict_count"] == 0
    assert before["avg_predict_duration_ms"] == -1.0
    assert before["avg_batch_size"] == -1.0
    stats.record(PredictCall(images=3, failed=1, predict_ms=300.0, transform_ms=120.0))
    stats.record(PredictCall(images=1, failed=1, predict_ms=100.0, transform_ms=40.0))
    assert stats.service_stats() == {
        "inference_count": 2,
        "predict_success": 1,
        "predict_failure": 1,  # the call that tagged nothing
        "predict_count": 2,
        "avg_batch_size": 1.0,
        "avg_predict_duration_ms": 200.0,
        "avg_transform_duration_ms": 80.0,
        "avg_predict_duration_s": 0.2,
        "avg_transform_duration_s": 0.08,
        "total_predict_duration_ms": 400.0,
        "total_transform_duration_ms": 160.0,
        "avg_predict_duration": 0.2,
        "avg_transform_duration": 0.08,
    }
    # deeptag's own summary keeps its names.
    assert stats.as_json() == {
        "predict_calls": 2,
        "images": 4,
        "failed": 2,
        "avg_predict_duration_ms": 200.0,
    }


def test_concurrent_transforms_count_once() -> None:
    assert covered_ms([]) == 0.0
    # Two images read at the same time, a third after a gap: 0.3 s + 0.1 s of wall time.
    assert covered_ms([(0.0, 0.2), (0.1, 0.3), (0.5, 0.6)]) == pytest.approx(400.0)


def test_observer_records_transform_time_and_failed_calls() -> None:
    metrics = Metrics()
    stats = ServiceStats()
    with stats.observe() as call:
        with metrics.timed("fetch"):
            time.sleep(0.002)
        with metrics.timed("infer"):
            pass
        call.tagged([prediction("http://x/a.jpg")])
    first = stats.service_stats()
    assert (first["predict_success"], first["inference_count"]) == (1, 1)
    assert 0 < first["total_transform_duration_ms"] <= first["total_predict_duration_ms"]
    with pytest.raises(RuntimeError), stats.observe():
        raise RuntimeError("Triton went away")
    assert stats.service_stats()["predict_failure"] == 1
    # Outside a call, timed stages are not collected anywhere.
    with metrics.timed("fetch"):
        pass
    assert (
        stats.service_stats()["total_transform_duration_ms"] == first["total_transform_duration_ms"]
    )


def test_service_json_has_deepdetect_fields_and_deeptag_extras() -> None:
    spec = ServiceSpec(
        name="imageserv",
        model="efficientnet_lite0",
        mllib="torch",
        repository="/home/me/models/images",
        parameters={"input": {"connector": "image", "rgb": True}, "mllib": {"gpu": True}},
    )
    body = service_json(spec, ServiceStats(), with_jobs=True, labels=["n01 a", "n02 b"])
    assert {
        "name": "imageserv",
        "mllib": "torch",
        "mltype": "classification",
        "type": "supervised",
        "predict": True,
        "training": False,
        "jobs": [],
        "repository": "/home/me/models/images",
        "width": 224,
        "height": 224,
        "labels": ["n01 a", "n02 b"],
        "model": "efficientnet_lite0",
    }.items() <= body.items()
    assert body["parameters"] == {
        "input": {"connector": "image", "rgb": True, "width": 224, "height": 224},
        "mllib": {"gpu": True, "nclasses": 1000},
        "output": {},
    }
    assert body["service_stats"]["predict_count"] == 0
    assert body["stats"]["predict_calls"] == 0
    listed = service_json(spec, ServiceStats(), with_jobs=False)
    assert "jobs" not in listed
    assert "labels" not in listed


def prediction(uri: str) -> Prediction:
    return Prediction(source(uri), (Label("n07920052 espresso", 0.9),), 640, 480, "ab" * 32)


def test_photo_fields_join_a_prediction_only_when_asked() -> None:
    photo = PhotoMetadata(
        format="JPEG",
        taken_at="2019-07-14T10:30:00+02:00",
        camera=Camera("Canon", "EOS 5D Mark IV"),
        place=Place("Paris", "Île-de-France", "France", "FR"),
        keywords=("holiday",),
    )
    tagged = Prediction(
        source("http://x/a.jpg"), (Label("n02123045 tabby", 0.8),), 640, 480, "ab" * 32, photo=photo
    )
    plain = predict_response([tagged], "imageserv", 1.0)["body"]["predictions"][0]
    assert set(plain) == {"uri", "classes", "last"}
    rich = predict_response([tagged], "imageserv", 1.0, metadata=True)["body"]["predictions"][0]
    assert rich["taken_at"] == "2019-07-14T10:30:00+02:00"
    assert rich["camera"] == {"make": "Canon", "model": "EOS 5D Mark IV"}
    assert rich["place"]["city"] == "Paris"
    assert rich["keywords"] == ["holiday"]
    assert rich["uri"] == "http://x/a.jpg"
    assert rich["classes"][0]["cat"] == "n02123045 tabby"
