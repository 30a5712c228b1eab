from pathlib import Path

import pytest

from orchestrator.reference import settings_page
from orchestrator.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_every_setting_has_a_description() -> None:
    # The description is the one text about a setting: the settings page is made of it.
    undocumented = [
        f"DEEPTAG_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_the_settings_page_is_current() -> None:
    page = REPO_ROOT / "docs" / "reference" / "settings.md"
    assert page.read_text(encoding="utf-8") == settings_page.render(), (
        f"{page} is stale: run `python -m orchestrator.reference` (make docs-reference)"
    )
