from pathlib import Path

import pytest

from orchestrator.settings import load_settings


def test_environment_and_cli_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPTAG_SINK_ALLOW", "es.example, search.internal")
    monkeypatch.setenv("DEEPTAG_IMAGE_ROOTS", "/srv/a,/srv/b")
    monkeypatch.setenv("DEEPTAG_ES_URL", "https://es-prod:9200")
    monkeypatch.setenv("DEEPTAG_PORT", "9000")
    settings = load_settings(port=9100, triton_url=None)
    assert settings.port == 9100
    assert settings.image_roots == [Path("/srv/a"), Path("/srv/b")]
    assert settings.sink_allowed_hosts >= {"localhost", "127.0.0.1", "es.example", "es-prod"}


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPTAG_TRITON_PROTOCOL", "carrier-pigeon")
    with pytest.raises(ValueError, match="triton_protocol"):
        load_settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from orchestrator.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [
        f"DEEPTAG_{name.upper()}"
        for name in Settings.model_fields
        if f"`DEEPTAG_{name.upper()}`" not in readme
    ]
    assert missing == []
