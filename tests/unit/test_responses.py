from orchestrator.errors import NotAnImage, ServiceNotFound
from orchestrator.responses import error_response, predict_response
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
