"""docker-compose.yml, Dockerfile and .dockerignore: valid, and wired together.

No Docker engine is needed. The compose file is interpolated the way `docker compose` does it
(``${VAR:-default}``, ``${VAR:?error}``, ``$$``), validated against the Compose Specification's
JSON schema (the copy vendored by check-jsonschema, so the check runs offline), and then checked
for the cross-references that compose itself accepts but that fail at ``up`` time.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCS = ROOT / "docs" / "how-to" / "gpu.md"
SCHEMA_IN_DIST = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"

Compose = dict[str, Any]
#: The Triton services, in the order DEEPTAG_TRITON_URL lists them.
TRITONS = ("triton", "triton-2")

# ---------------------------------------------------------------------------------------------
# Interpolation, as compose does it: on values (not keys), after YAML parsing.

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


@dataclass(frozen=True)
class VariableUse:
    name: str
    op: str | None  # None, ":-", "-", ":?", "?", ":+", "+"
    arg: str


class MissingVariable(Exception):
    pass


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def variable_uses(node: Any) -> list[VariableUse]:
    """Every ``${VAR...}`` in the values; bare ``$VAR`` and a lone ``$`` are errors."""
    uses = []
    for text in _strings(node):
        for m in _INTERPOLATION.finditer(text):
            if m["bare"] is not None or m["invalid"] is not None:
                raise AssertionError(
                    f"{text!r}: write ${{NAME}} for compose or $$ for the container's shell"
                )
            if m["braced"]:
                uses.append(VariableUse(m["braced"], m["op"], m["arg"] or ""))
    return uses


def interpolate(node: Any, env: dict[str, str]) -> Any:
    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["braced"], m["op"], m["arg"] or ""
        if name is None:
            raise AssertionError(f"unsupported interpolation {m[0]!r}")
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        return value or ""

    if isinstance(node, str):
        return _INTERPOLATION.sub(substitute, node)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return node


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def raw() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def uses(raw: Compose) -> list[VariableUse]:
    return variable_uses(raw)


@pytest.fixture(scope="module")
def required_env(uses: list[VariableUse]) -> dict[str, str]:
    """A value for each variable without a default, as a user's .env provides them."""
    return {u.name: f"test-{u.name.lower()}" for u in uses if u.op in (":?", "?")}


@pytest.fixture(scope="module")
def compose(raw: Compose, required_env: dict[str, str]) -> Compose:
    result = interpolate(raw, required_env)
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def services(compose: Compose) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    # Read by path: importing check_jsonschema would pull in its CLI for nothing.
    path = Path(str(distribution("check-jsonschema").locate_file(SCHEMA_IN_DIST)))
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    # No check_schema (0.4 s): the broken copies below show the validator bites.
    # No format checker: the spec's durations ("10s") are not the ISO 8601 ones jsonschema
    # knows, and formats are annotations in draft 2020-12 anyway.
    return cls(schema)


def _schema_errors(validator: jsonschema.protocols.Validator, doc: Compose) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
        for e in validator.iter_errors(doc)
    ]


# ---------------------------------------------------------------------------------------------
# The schema


def test_compose_file_is_valid_against_the_compose_spec(
    validator: jsonschema.protocols.Validator, compose: Compose
) -> None:
    assert _schema_errors(validator, compose) == []


def _misspell_depends_on(doc: Compose) -> None:
    svc = doc["services"]["orchestrator"]
    svc["depend_on"] = svc.pop("depends_on")


def _unknown_condition(doc: Compose) -> None:
    doc["services"]["triton"]["depends_on"]["model-export"]["condition"] = "service_finished"


def _ports_as_mapping(doc: Compose) -> None:
    doc["services"]["elasticsearch"]["ports"] = {"9200": "9200"}


def _capabilities_as_string(doc: Compose) -> None:
    devices = doc["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"]
    devices[0]["capabilities"] = "gpu"


def _misspell_top_level(doc: Compose) -> None:
    doc["volume"] = doc.pop("volumes")


def _misspell_config_content(doc: Compose) -> None:
    doc["configs"]["proxy-conf"]["contents"] = doc["configs"]["proxy-conf"].pop("content")


@pytest.mark.parametrize(
    "breakage",
    [
        _misspell_depends_on,
        _unknown_condition,
        _ports_as_mapping,
        _capabilities_as_string,
        _misspell_top_level,
        _misspell_config_content,
    ],
)
def test_the_validator_rejects_a_broken_copy(
    validator: jsonschema.protocols.Validator,
    compose: Compose,
    breakage: Callable[[Compose], None],
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert _schema_errors(validator, broken), f"{breakage.__name__} passed validation"


# ---------------------------------------------------------------------------------------------
# Variables


def test_variables_have_a_default_or_are_documented(uses: list[VariableUse]) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    undocumented = sorted(
        {u.name for u in uses if u.op not in (":-", "-") and f"`{u.name}`" not in docs}
    )
    assert undocumented == [], f"document these in {DOCS.relative_to(ROOT)}"


def test_a_missing_secret_stops_compose_with_a_message(raw: Compose) -> None:
    with pytest.raises(MissingVariable, match=r"ELASTIC_PASSWORD: set ELASTIC_PASSWORD"):
        interpolate(raw, {})


def test_environment_names_are_deeptag_settings(services: dict[str, dict[str, Any]]) -> None:
    known = {f"DEEPTAG_{name.upper()}" for name in Settings.model_fields}
    for name, svc in services.items():
        if svc.get("build"):  # the containers that run deeptag
            unknown = {k for k in _environment(svc) if k.startswith("DEEPTAG_")} - known
            assert not unknown, f"{name}: not deeptag settings: {sorted(unknown)}"


# ---------------------------------------------------------------------------------------------
# References between services


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_depends_on_can_be_satisfied(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on undefined service {dep!r}"
            target = services[dep]
            if condition == "service_healthy":
                test = target.get("healthcheck", {}).get("test")
                assert test, f"{name} waits for {dep}, which has no healthcheck"
                assert test != ["NONE"], f"{name} waits for {dep}, whose healthcheck is off"
            if condition == "service_completed_successfully":
                assert target.get("restart", "no") in ("no", "on-failure"), (
                    f"{name} waits for {dep} to exit, but {dep} is restarted"
                )
            if not svc.get("profiles"):
                assert not target.get("profiles"), (
                    f"{name} always runs but depends on {dep}, which is in a profile"
                )


def _volume_source(entry: str | dict[str, Any]) -> tuple[str, str, bool]:
    """(source, target, read_only) of a short or long volume entry."""
    if isinstance(entry, dict):
        return entry.get("source", ""), entry["target"], bool(entry.get("read_only"))
    parts = entry.split(":")
    source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
    return source, target, len(parts) > 2 and "ro" in parts[2].split(",")


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def test_named_volumes_are_declared(compose: Compose) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for svc in compose["services"].values():
        for entry in svc.get("volumes", []):
            source, _, _ = _volume_source(entry)
            if source and not _is_bind(source):
                used.add(source)
    assert used, "the data volumes are gone"
    assert used <= declared, f"undeclared named volumes: {sorted(used - declared)}"


def _container_ports(svc: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in svc.get("ports", []):
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def _host_ports(svc: dict[str, Any]) -> set[int]:
    """The ports ``svc`` takes on the host (short syntax ``IP:HOST:CONTAINER`` or long)."""
    ports = set()
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
        else:
            parts = str(entry).split(":")
            published = parts[-2] if len(parts) > 1 else None
        if published:
            ports.add(int(str(published)))
    return ports


def _exposed_ports(svc: dict[str, Any]) -> set[int]:
    return {int(str(p).split("/")[0]) for p in svc.get("expose", [])}


def _flag(command: list[str], flag: str) -> str | None:
    for arg in command:
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    if flag in command and command.index(flag) + 1 < len(command):
        return command[command.index(flag) + 1]
    return None


def _command(svc: dict[str, Any]) -> list[str]:
    command = svc.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_the_orchestrator_reaches_triton_and_elasticsearch(
    services: dict[str, dict[str, Any]],
) -> None:
    env = _environment(services["orchestrator"])

    # Every Triton is in the list, once, at the port it serves HTTP on.
    triton_urls = [urlsplit(url.strip()) for url in env["DEEPTAG_TRITON_URL"].split(",")]
    assert [url.hostname for url in triton_urls] == list(TRITONS)
    for url in triton_urls:
        assert url.scheme == env.get("DEEPTAG_TRITON_PROTOCOL", "http") == "http"
        triton = services[str(url.hostname)]
        http_port = int(_flag(_command(triton), "--http-port") or 8000)
        assert url.port == http_port
        assert http_port in _container_ports(triton)
        health = " ".join(triton["healthcheck"]["test"])
        assert f"localhost:{http_port}/v2/health/ready" in health

    es_url = urlsplit(env["DEEPTAG_ES_URL"])
    assert es_url.hostname == "elasticsearch"
    assert es_url.port == 9200
    assert es_url.port in _container_ports(services["elasticsearch"])
    # The other clients of Elasticsearch use the same address.
    assert env["DEEPTAG_ES_URL"] in services["es-setup"]["command"][0]
    assert env["DEEPTAG_ES_URL"] in services["kibana"]["environment"]["ELASTICSEARCH_HOSTS"]
    assert _environment(services["es-setup"])["DEEPTAG_ES_INDEX"] == env["DEEPTAG_ES_INDEX"]


def test_the_orchestrator_listens_where_it_is_published_and_probed(
    services: dict[str, dict[str, Any]],
) -> None:
    svc = services["orchestrator"]
    command = _command(svc)
    assert command[0] == "serve"
    assert _flag(command, "--host") == "0.0.0.0"
    port = int(_flag(command, "--port") or 8080)
    assert "ports" not in svc, "a scaled service cannot publish a fixed host port"
    assert _exposed_ports(svc) == {port}
    assert f"127.0.0.1:{port}/health" in " ".join(svc["healthcheck"]["test"])
    # It starts only once both Tritons serve the model: a replica that started without one
    # would route every batch to the other.
    assert _depends_on(svc) == {
        "triton": "service_healthy",
        "triton-2": "service_healthy",
        "elasticsearch": "service_healthy",
        "es-setup": "service_completed_successfully",
    }
    assert _environment(svc)["DEEPTAG_API_KEY"], "the API is open"


def test_the_orchestrator_runs_several_replicas(services: dict[str, dict[str, Any]]) -> None:
    svc = services["orchestrator"]
    assert int(svc["deploy"]["replicas"]) >= 2
    # A fixed container name allows one container only.
    assert "container_name" not in svc


_NGINX_DIRECTIVE = re.compile(r"^\s*([a-z_]+)\s+([^;{]*);", re.M)
_NGINX_SIZE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _nginx(config: str) -> dict[str, list[str]]:
    """Directive -> the arguments of each of its occurrences (comments dropped)."""
    text = re.sub(r"#[^\n]*", "", config)
    found: dict[str, list[str]] = {}
    for name, args in _NGINX_DIRECTIVE.findall(text):
        found.setdefault(name, []).append(" ".join(args.split()))
    return found


def _proxy_config(compose: Compose, svc: dict[str, Any]) -> dict[str, list[str]]:
    (mount,) = svc["configs"]
    assert mount["target"] == "/etc/nginx/conf.d/default.conf"
    return _nginx(compose["configs"][mount["source"]]["content"])


def test_the_proxy_is_the_only_door_to_the_orchestrator_replicas(
    compose: Compose, services: dict[str, dict[str, Any]]
) -> None:
    proxy = services["proxy"]
    on_8080 = sorted(name for name, svc in services.items() if 8080 in _host_ports(svc))
    assert on_8080 == ["proxy"]
    config = _proxy_config(compose, proxy)
    (listen,) = config["listen"]
    assert _container_ports(proxy) == {int(listen)}
    assert f"127.0.0.1:{listen}/health" in " ".join(proxy["healthcheck"]["test"])
    assert _depends_on(proxy) == {"orchestrator": "service_healthy"}

    # proxy_pass through a variable: resolved per request, so scaled replicas are found.
    assert config["resolver"][0].split()[0] == "127.0.0.11"
    (target,) = config["proxy_pass"]
    assert target.startswith("$"), "a literal name is resolved once, at nginx's start"
    variables = dict(arg.split(" ", 1) for arg in config["set"])
    upstream = urlsplit(variables[target])
    orchestrator = services["orchestrator"]
    assert upstream.hostname == "orchestrator"
    assert upstream.port == int(_flag(_command(orchestrator), "--port") or 8080)


def test_the_proxy_lets_through_what_the_orchestrator_accepts(
    compose: Compose, services: dict[str, dict[str, Any]]
) -> None:
    config = _proxy_config(compose, services["proxy"])
    # The orchestrator's own limits: what its environment sets, else the defaults.
    env = _environment(services["orchestrator"])
    fields = Settings.model_fields
    max_body = int(env.get("DEEPTAG_MAX_BODY_BYTES", fields["max_body_bytes"].default))
    timeout = float(env.get("DEEPTAG_PREDICT_TIMEOUT_S", fields["predict_timeout_s"].default))
    size = re.fullmatch(r"(\d+)([kmg]?)", config["client_max_body_size"][0].lower())
    assert size, config["client_max_body_size"]
    body_limit = int(size[1]) * _NGINX_SIZE[size[2]]
    assert body_limit >= max_body, "nginx would refuse uploads deeptag takes"
    (read_timeout,) = config["proxy_read_timeout"]
    assert int(read_timeout.removesuffix("s")) > timeout, (
        "nginx would cut a long /predict off before deeptag answers it"
    )


def test_no_two_services_publish_one_host_port(services: dict[str, dict[str, Any]]) -> None:
    owners: dict[int, str] = {}
    for name, svc in services.items():
        for port in _host_ports(svc):
            assert port not in owners, f"{name} and {owners[port]} both publish {port}"
            owners[port] = name


@pytest.mark.parametrize("name", TRITONS)
def test_triton_serves_the_repository_that_model_export_writes(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    triton, export = services[name], services["model-export"]
    command = _command(triton)
    assert command[0] == "tritonserver"

    mounts = {_volume_source(e)[1]: _volume_source(e) for e in triton["volumes"]}
    repository = _flag(command, "--model-repository")
    assert repository in mounts, "--model-repository is not a mounted path"
    source, _, read_only = mounts[repository]
    assert read_only, "Triton needs no write access to the models"
    assert (ROOT / source).resolve() == ROOT / "model_repository"
    config = (ROOT / source / "efficientnet_lite0" / "config.pbtxt").read_text(encoding="utf-8")
    assert 'backend: "onnxruntime"' in config
    assert "KIND_GPU" in config

    assert _command(export)[:2] == ["models", "export"]
    (export_source, export_target, export_ro) = _volume_source(export["volumes"][0])
    assert (ROOT / export_source).resolve() == ROOT / "model_repository"
    assert not export_ro
    assert _environment(export)["DEEPTAG_MODEL_REPOSITORY"] == export_target
    assert _depends_on(triton)["model-export"] == "service_completed_successfully"


def _gpus(svc: dict[str, Any]) -> list[dict[str, Any]]:
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    return [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d["capabilities"]]


@pytest.mark.parametrize("name", TRITONS)
def test_triton_reserves_a_gpu(services: dict[str, dict[str, Any]], name: str) -> None:
    triton = services[name]
    gpus = _gpus(triton)
    assert gpus, "no NVIDIA GPU reserved"
    assert (
        gpus[0].get("count") == "all" or gpus[0].get("count", 0) >= 1 or gpus[0].get("device_ids")
    )
    assert triton.get("shm_size")


def test_the_two_tritons_are_the_same_server_on_different_gpus(
    services: dict[str, dict[str, Any]],
) -> None:
    first, second = (services[name] for name in TRITONS)
    # The orchestrator refuses a pool whose servers serve different models.
    for key in ("image", "command", "volumes", "healthcheck"):
        assert first[key] == second[key], f"the Tritons differ in {key}"
    # `count: 1` is the host's first GPU; the second Triton asks for another by id.
    assert _gpus(first)[0].get("count") == 1
    assert _gpus(second)[0]["device_ids"] == ["1"]


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for entry in svc.get("ports", []):
            if isinstance(entry, dict):
                host_ip = entry.get("host_ip")
            else:
                parts = str(entry).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            assert host_ip == "127.0.0.1", f"{name} publishes {entry!r} beyond this host"


def test_kibana_is_optional(services: dict[str, dict[str, Any]]) -> None:
    assert services["kibana"].get("profiles") == ["kibana"]
    in_profiles = {name for name, svc in services.items() if svc.get("profiles")}
    assert in_profiles == {"kibana"}
    # Kibana 8 refuses the elastic superuser: it logs in as kibana_system.
    assert services["kibana"]["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"


_VERSION_TAG = {
    "elasticsearch": r"docker\.elastic\.co/elasticsearch/elasticsearch:8\.\d+\.\d+",
    "es-setup": r"docker\.elastic\.co/elasticsearch/elasticsearch:8\.\d+\.\d+",
    "kibana": r"docker\.elastic\.co/kibana/kibana:8\.\d+\.\d+",
    "triton": r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3",
    "triton-2": r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3",
    "proxy": r"nginx:\d+\.\d+(\.\d+)?-alpine",
}


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, pattern in _VERSION_TAG.items():
        assert re.fullmatch(pattern, services[name]["image"]), services[name]["image"]
    elastic = {services[n]["image"].rsplit(":", 1)[1] for n in ("elasticsearch", "kibana")}
    assert len(elastic) == 1, "Kibana must run the version of Elasticsearch"


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(text: str) -> list[Stage]:
    logical = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def effective(stages: list[Stage], stage: Stage, keyword: str) -> str | None:
    """The last ``keyword`` of ``stage``, else of the stage it is built FROM."""
    for kw, rest in reversed(stage.instructions):
        if kw == keyword:
            return rest
    parent = next((s for s in stages if s.name == stage.base), None)
    return effective(stages, parent, keyword) if parent else None


def test_builds_use_the_dockerfile_with_the_deeptag_entrypoint(
    services: dict[str, dict[str, Any]],
) -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    by_name = {s.name: s for s in stages if s.name}
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert set(built) == {"model-export", "orchestrator"}
    for name, build in built.items():
        context = ROOT / build.get("context", ".")
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        stage = by_name[build["target"]] if "target" in build else stages[-1]
        entrypoint = effective(stages, stage, "ENTRYPOINT")
        assert entrypoint, f"{name}: no ENTRYPOINT"
        assert json.loads(entrypoint) == ["deeptag"], name
        user = effective(stages, stage, "USER")
        assert user not in (None, "root", "0"), f"{name} runs as root"
    assert stages[-1].name == "runtime", "a plain `docker build .` should give the server"
    assert stages[0].base == "${PYTHON_IMAGE}"
    assert re.search(
        r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE.read_text(encoding="utf-8"), re.M
    )


def test_the_image_installs_a_wheel_and_the_export_pin() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert "pip install -e" not in dockerfile
    assert "--editable" not in dockerfile
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    torch_pin = next(
        r for r in pyproject["project"]["optional-dependencies"]["export"] if r.startswith("torch")
    )
    assert (
        f'pip install --index-url https://download.pytorch.org/whl/cpu "{torch_pin}"' in dockerfile
    )


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allow-list"
    copied = []
    for stage in dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8")):
        for keyword, rest in stage.instructions:
            if keyword == "COPY" and not rest.startswith("--from"):
                copied += rest.split()[:-1]
    assert copied
    for source in copied:
        top = PurePosixPath(source).parts[0]
        assert f"!{top}" in patterns, f".dockerignore leaves {source} out of the context"
        assert (ROOT / source).exists()
    for unwanted in ("**/*.onnx", "**/__pycache__", "**/.venv"):
        assert unwanted in patterns


# ---------------------------------------------------------------------------------------------
# es-setup's script, run against a stand-in for Elasticsearch's security API


@dataclass
class Call:
    method: str
    path: str
    authorization: str
    body: Any


class _FakeSecurityApi(BaseHTTPRequestHandler):
    calls: list[Call]
    status: int

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length)) if length else None  # must be JSON
        self.calls.append(
            Call(self.command, self.path, self.headers.get("Authorization", ""), body)
        )
        payload = b'{"created":true}' if self.status < 300 else b'{"error":"no"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class SetupRun:
    returncode: int
    stderr: str
    calls: list[Call]


@pytest.fixture(scope="module")
def fake_security_api() -> Iterator[tuple[str, type[_FakeSecurityApi]]]:
    handler = type("Handler", (_FakeSecurityApi,), {"calls": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def run_es_setup(
    services: dict[str, dict[str, Any]],
    fake_security_api: tuple[str, type[_FakeSecurityApi]],
    tmp_path: Path,
) -> Callable[..., SetupRun]:
    if not (shutil.which("bash") and shutil.which("curl")):
        pytest.skip("es-setup's script needs bash and curl")
    svc = services["es-setup"]
    assert svc["entrypoint"] == ["/bin/bash", "-c"]
    url, handler = fake_security_api
    script = svc["command"][0].replace("http://elasticsearch:9200", url)

    def run(status: int = 200, **overrides: str) -> SetupRun:
        handler.calls, handler.status = [], status
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
        env |= _environment(svc) | overrides
        done = subprocess.run(
            ["bash", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return SetupRun(done.returncode, done.stderr, list(handler.calls))

    return run


def test_es_setup_creates_the_orchestrator_user(
    run_es_setup: Callable[..., SetupRun], services: dict[str, dict[str, Any]]
) -> None:
    result = run_es_setup(KIBANA_PASSWORD="kibana-secret")
    assert result.returncode == 0, result.stderr
    calls = {(c.method, c.path): c for c in result.calls}
    role = calls["PUT", "/_security/role/deeptag_writer"].body
    orchestrator = _environment(services["orchestrator"])
    assert role["indices"] == [
        {"names": [f"{orchestrator['DEEPTAG_ES_INDEX']}*"], "privileges": ["all"]}
    ]
    user = calls["PUT", f"/_security/user/{orchestrator['DEEPTAG_ES_USERNAME']}"].body
    assert user["password"] == orchestrator["DEEPTAG_ES_PASSWORD"]
    assert user["roles"] == ["deeptag_writer"]
    assert calls["POST", "/_security/user/kibana_system/_password"].body == {
        "password": "kibana-secret"
    }
    assert all(c.authorization.startswith("Basic ") for c in result.calls)


def test_es_setup_leaves_kibana_alone_without_its_password(
    run_es_setup: Callable[..., SetupRun],
) -> None:
    result = run_es_setup(KIBANA_PASSWORD="")
    assert result.returncode == 0, result.stderr
    assert [c.path for c in result.calls] == [
        "/_security/role/deeptag_writer",
        "/_security/user/deeptag",
    ]


def test_es_setup_fails_when_elasticsearch_refuses(run_es_setup: Callable[..., SetupRun]) -> None:
    result = run_es_setup(status=401)
    assert result.returncode != 0
    assert "answered 401" in result.stderr
    assert len(result.calls) == 1, "it went on after a failure"


def test_es_setup_refuses_a_password_that_would_break_its_json(
    run_es_setup: Callable[..., SetupRun],
) -> None:
    result = run_es_setup(DEEPTAG_ES_PASSWORD='pa"ss')
    assert result.returncode != 0
    assert "DEEPTAG_ES_PASSWORD must not contain" in result.stderr
    assert result.calls == []
