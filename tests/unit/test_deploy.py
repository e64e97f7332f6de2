"""deploy/ against the code it runs: commands, routes, ports and settings.

No Docker engine or cluster runs here or in CI, so the Dockerfile, the compose file and the Kubernetes
manifests are parsed and compared with the typer app, the FastAPI routes and ``Settings``. Each failure
names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.routing import Match

from services.api.app import create_app
from services.cli import app as cli_app
from services.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "production.env.example"

APP_SERVICES = ("api", "worker", "migrate")  # compose services and k8s workloads that run the image
PRODUCTION_SETTINGS = ("database_url", "redis_url")  # the embedded defaults are for one process only
Doc = dict[str, Any]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- what the code offers ---------------------------------------------------------------------------


PREFIX: str = Settings.model_config["env_prefix"]
SETTING_NAMES = {PREFIX + name.upper(): name for name in Settings.model_fields}


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings as a process with exactly this environment would read them (no .env file, no stray
    SPAREFLOW_* of the test run)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.upper().startswith(PREFIX)]:
            patch.delenv(name)
        for name, value in env.items():
            if name.startswith(PREFIX):
                # A YAML number reaches a process as its text (test_setting_values_validate flags it).
                patch.setenv(name, str(value))
        return Settings(_env_file=None)


@cache
def api_app() -> FastAPI:
    return create_app(Settings(_env_file=None))


def is_get_route(path: str) -> bool:
    """Whether ``GET path`` reaches an endpoint of the API. Matched the way requests are, since
    app.routes holds included routers rather than their routes in recent FastAPI, and /health, /ready
    and /metrics may be left out of the OpenAPI document."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in api_app().router.routes)


def cli_problem(argv: list[str]) -> str | None:
    """Why ``argv`` is not a command of the ``spareflow`` CLI, or None when it is one.

    Walks the click command typer builds. Duck-typed (``commands``, ``param_type_name``): recent typer
    ships its own copy of click, whose classes are not ``click``'s.
    """
    if not argv or argv[0] != "spareflow":
        return f"{argv} does not run spareflow"
    command: Any = typer.main.get_command(cli_app)
    path = ["spareflow"]
    words = iter(argv[1:])
    for word in words:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            options = [p for p in command.params if flag in (*p.opts, *getattr(p, "secondary_opts", ()))]
            if not options:
                return f"`{' '.join(path)}` has no option {flag}"
            if not getattr(options[0], "is_flag", False) and "=" not in word:
                next(words, None)  # the option's value
        elif hasattr(command, "commands"):
            if word not in command.commands:
                return f"`{' '.join(path)}` has no subcommand {word!r}"
            command = command.commands[word]
            path.append(word)
        elif not any(p.param_type_name == "argument" for p in command.params):
            return f"`{' '.join(path)}` takes no argument {word!r}"
    if hasattr(command, "commands"):
        return f"`{' '.join(path)}` is a group, not a command"
    return None


# --- reading deploy/ --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM it belongs to
    keyword: str
    args: str


@cache
def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (as Docker reads them)."""
    instructions: list[Instruction] = []
    pending, stage = "", -1
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\")
        if line.rstrip().endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        stage += keyword.upper() == "FROM"
        instructions.append(Instruction(stage, keyword.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    """The final stage's ENV: what every container of the image starts with."""
    final = max(i.stage for i in dockerfile())
    env: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV" and instruction.stage == final:
            for word in shlex.split(instruction.args):
                name, value = word.split("=", 1)
                env[name] = value
    return env


def yaml_files() -> list[Path]:
    return sorted([COMPOSE, *K8S.glob("*.yaml"), *K8S.glob("*.yml")])


@cache
def yaml_docs(path: Path) -> list[Doc]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def k8s_objects() -> Iterator[tuple[Path, Doc]]:
    for path in yaml_files():
        if path.parent == K8S:
            for doc in yaml_docs(path):
                if doc.get("kind") != "Kustomization":
                    yield path, doc


def k8s_object(kind: str, name: str) -> Doc:
    matches = [doc for _, doc in k8s_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"deploy/k8s: expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def workload(component: str) -> Doc:
    """The Deployment or Job whose pods carry app.kubernetes.io/component=<component>."""
    found = [
        doc
        for _, doc in k8s_objects()
        if doc["kind"] in {"Deployment", "Job"}
        and pod_spec(doc)
        and doc["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"deploy/k8s: expected one workload for {component!r}, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def main_container(doc: Doc) -> Doc:
    container: Doc = pod_spec(doc)["containers"][0]
    return container


def k8s_env(doc: Doc) -> dict[str, str]:
    """What the main container's process sees: the image's ENV, then envFrom, then env (plain values;
    the manifests use no valueFrom)."""
    container = main_container(doc)
    env = dockerfile_env()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_object("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        if "secretRef" in source:
            env.update(k8s_object("Secret", source["secretRef"]["name"]).get("stringData", {}))
    env.update({entry["name"]: entry["value"] for entry in container.get("env", [])})
    return env


def container_ports(container: Doc) -> dict[str, int]:
    return {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container.get("ports", [])}


def compose() -> Doc:
    docs = yaml_docs(COMPOSE)
    assert len(docs) == 1, f"{rel(COMPOSE)}: expected one YAML document"
    return docs[0]


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} becomes its default; a required ${VAR:?...} or bare ${VAR} a stand-in."""
    pattern = r"\$\{(\w+)(?::?([-?])([^}]*))?\}"
    return re.sub(pattern, lambda m: m.group(3) if m.group(2) == "-" else f"unset-{m.group(1)}", value)


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def compose_env(name: str) -> dict[str, str]:
    """What a compose service's process sees: the image's ENV, env files that exist, then environment."""
    service = compose()["services"][name]
    env = dockerfile_env()
    for entry in service.get("env_file", []):
        path = DEPLOY / (entry if isinstance(entry, str) else entry["path"])
        required = isinstance(entry, str) or entry.get("required", True)
        if required or path.exists():
            env.update(read_env_file(path))
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: interpolate(str(v)) for k, v in environment.items() if v is not None})
    return env


def setting_sources() -> dict[str, dict[str, str]]:
    """Every place deploy/ sets SPAREFLOW_* variables, by a name that says where."""
    final_env = {k: v for k, v in dockerfile_env().items() if k.startswith(PREFIX)}
    sources = {f"{rel(DOCKERFILE)} ENV": final_env, rel(ENV_EXAMPLE): read_env_file(ENV_EXAMPLE)}
    for name in APP_SERVICES:
        sources[f"{rel(COMPOSE)} service {name}"] = compose_env(name)
    for path, doc in k8s_objects():
        where = f"{rel(path)} {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap":
            sources[where] = doc.get("data", {})
        elif doc["kind"] == "Secret":
            sources[where] = doc.get("stringData", {})
        elif pod_spec(doc):
            sources[where] = {e["name"]: e.get("value") for e in main_container(doc).get("env", [])}
    return sources


def http_urls(text: str) -> list[tuple[str, str]]:
    """(port, path) of every http://host:port/path in a check's command line."""
    return re.findall(r"https?://[^/:'\"\s]+:([^/'\"\s]+)(/[\w/-]*)", text)


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    parsed = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity)
    assert parsed is not None, f"not a Kubernetes quantity: {quantity!r}"
    number, unit = parsed.groups()
    return int(number) * units.get(unit, 1)


def duration_seconds(duration: str) -> int:
    parts = re.findall(r"(\d+)([hms])", duration)
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# --- files and objects ------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    problems = []
    for path in yaml_files():
        try:
            yaml_docs(path)
        except yaml.YAMLError as exc:
            problems.append(f"{rel(path)}: {exc}")
    assert problems == []


def test_kubernetes_objects_are_named_and_complete() -> None:
    problems = [
        f"{rel(path)}: a document lacks {field}"
        for path, doc in k8s_objects()
        for field in ("apiVersion", "kind", "metadata")
        if field not in doc
    ]
    problems += [
        f"{rel(path)}: a {doc.get('kind')} has no metadata.name"
        for path, doc in k8s_objects()
        if not doc.get("metadata", {}).get("name")
    ]
    kinds = {doc["kind"] for _, doc in k8s_objects()}
    needed = {"Deployment", "Job", "HorizontalPodAutoscaler", "ConfigMap", "Secret", "Service"}
    problems += [f"deploy/k8s: no {kind}" for kind in sorted(needed - kinds)]
    assert problems == []
    # Exactly one workload each, or workload() says which; and one image, so that the migration is the
    # schema the API and workers were built for.
    images = {component: main_container(workload(component))["image"] for component in APP_SERVICES}
    assert len(set(images.values())) == 1, f"deploy/k8s: the workloads run different images: {images}"


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = yaml_docs(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in yaml_files() if path.parent == K8S} - {"kustomization.yaml"}
    assert sorted(listed - on_disk) == [], "deploy/k8s/kustomization.yaml lists files that do not exist"
    assert sorted(on_disk - listed) == [], "deploy/k8s/kustomization.yaml leaves these manifests out"


def test_services_select_pods_and_target_their_ports() -> None:
    problems = []
    for path, service in k8s_objects():
        if service["kind"] != "Service":
            continue
        where = f"{rel(path)} Service {service['metadata']['name']}"
        selector = service["spec"]["selector"]
        pods = [
            doc
            for _, doc in k8s_objects()
            if doc["kind"] == "Deployment"
            and selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
        ]
        if not pods:
            problems.append(f"{where}: selector {selector} matches no Deployment's pods")
        for deployment in pods:
            ports = container_ports(main_container(deployment))
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if target not in (*ports, *ports.values()):
                    problems.append(
                        f"{where}: targetPort {target!r} is not a port of {deployment['metadata']['name']}"
                    )
    assert problems == []


def test_deployments_select_their_own_pods() -> None:
    for path, doc in k8s_objects():
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), (
                f"{rel(path)} {doc['metadata']['name']}: selector misses its pods"
            )


def test_the_autoscaler_scales_the_api_on_cpu_it_requests() -> None:
    api = workload("api")
    hpas = [doc for _, doc in k8s_objects() if doc["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"] for h in hpas] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": api["metadata"]["name"]}
    ], "deploy/k8s: the HorizontalPodAutoscaler must target the API Deployment"
    (hpa,) = hpas
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] >= 2, "deploy/k8s: the autoscaler may take the API down to one pod"
    assert api["spec"]["replicas"] >= 2, "deploy/k8s: the API runs on one pod"
    # Utilization is a share of the request: without one the autoscaler has nothing to compare against.
    assert "cpu" in main_container(api)["resources"]["requests"], (
        "deploy/k8s: the API container requests no CPU"
    )


# --- commands and routes ----------------------------------------------------------------------------


def test_every_command_is_a_real_cli_command() -> None:
    commands: dict[str, list[str]] = {}
    for instruction in dockerfile():
        if instruction.keyword == "CMD":
            commands[f"{rel(DOCKERFILE)} CMD"] = json.loads(instruction.args)
    for name, service in compose()["services"].items():
        if "build" in service and "command" in service:  # postgres and redis run their own images
            commands[f"{rel(COMPOSE)} {name} command"] = service["command"]
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "spareflow"]:
            commands[f"{rel(COMPOSE)} {name} healthcheck"] = test[1:]
    for path, doc in k8s_objects():
        for container in pod_spec(doc).get("containers", []):
            where = f"{rel(path)} {doc['metadata']['name']}/{container['name']}"
            commands[f"{where} command"] = container.get("command", []) + container.get("args", [])
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in container.get(probe, {}):
                    commands[f"{where} {probe}"] = container[probe]["exec"]["command"]
    assert {w: p for w, argv in commands.items() if (p := cli_problem(argv))} == {}
    assert len(commands) >= 7, "fewer commands than deploy/ runs: is the parsing still finding them?"


def test_the_command_check_catches_what_is_not_there() -> None:
    # The check above is only as good as this: it must refuse commands and options that do not exist.
    assert cli_problem(["spareflow", "worker", "--burst"]) is None
    assert cli_problem(["spareflow", "db", "upgrade"]) is None
    assert cli_problem(["spareflow", "serve", "--port", "8000"]) is None
    assert cli_problem(["spareflow", "worker", "--no-such-option"]) is not None
    assert cli_problem(["spareflow", "db", "downgrade"]) is not None
    assert cli_problem(["spareflow", "db"]) is not None


def test_probes_and_health_checks_hit_real_routes_on_the_container_ports() -> None:
    problems = []
    for path, doc in k8s_objects():
        for container in pod_spec(doc).get("containers", []):
            where = f"{rel(path)} {doc['metadata']['name']}/{container['name']}"
            ports = container_ports(container)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                check = container.get(probe, {}).get("httpGet")
                if check and not is_get_route(check["path"]):
                    problems.append(f"{where} {probe}: {check['path']} is not a route of the API")
                if check and check["port"] not in (*ports, *ports.values()):
                    problems.append(f"{where} {probe}: port {check['port']!r} is not a container port")
    api_port = str(settings_from(k8s_env(workload("api"))).api_port)
    checks = {
        f"{rel(DOCKERFILE)} HEALTHCHECK": " ".join(
            i.args for i in dockerfile() if i.keyword == "HEALTHCHECK"
        ),
        f"{rel(COMPOSE)} api healthcheck": " ".join(compose()["services"]["api"]["healthcheck"]["test"]),
    }
    for where, text in checks.items():
        urls = http_urls(text)
        if not urls:
            problems.append(f"{where}: no http://host:port/path found in {text!r}")
        for port, url_path in urls:
            if not is_get_route(url_path):
                problems.append(f"{where}: {url_path} is not a route of the API")
            if port.isdigit() and port != api_port:
                problems.append(f"{where}: port {port} is not the API port {api_port}")
    assert problems == []


def test_the_image_health_check_needs_no_curl() -> None:
    (check,) = [i.args for i in dockerfile() if i.keyword == "HEALTHCHECK"]
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert argv[0].startswith("python"), (
        f"{rel(DOCKERFILE)}: HEALTHCHECK runs {argv[0]}; the slim image has no curl"
    )


def test_scrape_annotations_name_the_metrics_ports() -> None:
    for component, metrics_path_is_api_route in (("api", True), ("worker", False)):
        doc = workload(component)
        annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
        where = f"deploy/k8s {doc['metadata']['name']}"
        assert annotations.get("prometheus.io/scrape") == "true", f"{where}: pods are not scraped"
        port = int(annotations["prometheus.io/port"])
        assert port in container_ports(main_container(doc)).values(), (
            f"{where}: scrape port {port} is not a container port"
        )
        if metrics_path_is_api_route:
            assert is_get_route(annotations["prometheus.io/path"]), (
                f"{where}: scrape path is not an API route"
            )


# --- settings ---------------------------------------------------------------------------------------


def test_every_setting_name_is_a_settings_field() -> None:
    # Any mention counts, comments included: a renamed setting must not survive in the docs of deploy/.
    unknown = [
        f"{rel(path)}: {name} is not a field of Settings"
        for path in [DOCKERFILE, ENV_EXAMPLE, *yaml_files()]
        for name in sorted(set(re.findall(rf"\b{PREFIX}\w+", path.read_text())))
        if name not in SETTING_NAMES
    ]
    assert unknown == []


def test_setting_values_validate() -> None:
    problems = []
    for where, env in setting_sources().items():
        ours = {name: value for name, value in env.items() if name.startswith(PREFIX)}
        # Kubernetes refuses a ConfigMap or env value that YAML reads as a number or a boolean.
        problems += [f"{where}: {name} is not a string" for name, v in ours.items() if not isinstance(v, str)]
        try:
            settings_from(ours)
        except ValidationError as exc:
            problems.append(f"{where}: {exc}")
    assert problems == []


def test_production_settings_reach_every_process() -> None:
    needed = {f"{PREFIX}{name.upper()}" for name in PRODUCTION_SETTINGS}
    missing = {f"{rel(COMPOSE)} {name}": needed - compose_env(name).keys() for name in APP_SERVICES}
    missing |= {f"deploy/k8s {c}": needed - k8s_env(workload(c)).keys() for c in APP_SERVICES}
    assert {where: sorted(names) for where, names in missing.items() if names} == {}


def test_the_api_port_is_the_same_everywhere() -> None:
    api = workload("api")
    ports = {
        "Settings as the k8s API pod reads them": settings_from(k8s_env(api)).api_port,
        "Settings as the compose api reads them": settings_from(compose_env("api")).api_port,
        "k8s containerPort http": container_ports(main_container(api))["http"],
        "compose api port target": int(str(compose()["services"]["api"]["ports"][0]).rsplit(":", 1)[-1]),
    }
    ports |= {
        f"Dockerfile EXPOSE {i.args}": int(i.args.split("/")[0])
        for i in dockerfile()
        if i.keyword == "EXPOSE"
    }
    assert len(set(ports.values())) == 1, ports


def test_servers_listen_beyond_their_container() -> None:
    # The default (127.0.0.1) is right on a laptop and unreachable from outside a container. The worker's
    # metrics server binds the same address as the API.
    hosts = {
        f"{rel(COMPOSE)} {name}": settings_from(compose_env(name)).api_host for name in ("api", "worker")
    }
    hosts |= {f"deploy/k8s {c}": settings_from(k8s_env(workload(c))).api_host for c in ("api", "worker")}
    assert {where: host for where, host in hosts.items() if host not in {"0.0.0.0", "::"}} == {}


def test_the_worker_metrics_port_is_the_same_everywhere() -> None:
    worker = workload("worker")
    ports = {
        "Settings as the k8s worker reads them": settings_from(k8s_env(worker)).worker_metrics_port,
        "Settings as the compose worker reads them": settings_from(compose_env("worker")).worker_metrics_port,
        "k8s containerPort metrics": container_ports(main_container(worker))["metrics"],
        "compose worker expose": int(compose()["services"]["worker"]["expose"][0]),
    }
    assert len(set(ports.values())) == 1, ports
    assert 0 not in ports.values(), "the worker's metrics are off (port 0)"


def test_worker_has_room_for_mesh_work_and_time_to_stop() -> None:
    worker = workload("worker")
    settings = settings_from(k8s_env(worker))
    # One mesh process and one slicer at their address-space limits, and 512 MiB for the worker itself.
    needed = (
        settings.mesh_workers * settings.mesh_memory_limit_bytes + settings.slicer_memory_limit_bytes + 2**29
    )
    limit = quantity_bytes(main_container(worker)["resources"]["limits"]["memory"])
    assert limit >= needed, (
        f"deploy/k8s worker: memory limit {limit} < {needed} the mesh and slicer limits allow"
    )
    # Shutdown waits for a running mesh task, which the check timeout bounds.
    grace = {
        "deploy/k8s worker terminationGracePeriodSeconds": pod_spec(worker)["terminationGracePeriodSeconds"],
        f"{rel(COMPOSE)} worker stop_grace_period": duration_seconds(
            compose()["services"]["worker"]["stop_grace_period"]
        ),
    }
    too_short = {where: seconds for where, seconds in grace.items() if seconds < settings.check_timeout_s}
    assert too_short == {}, f"{too_short}: shorter than the {settings.check_timeout_s} s check timeout"


# --- what replicas share, and in which order they start ---------------------------------------------


def test_compose_runs_one_image_after_the_migration() -> None:
    services = compose()["services"]
    images = {
        name: (services[name].get("image"), json.dumps(services[name].get("build"), sort_keys=True))
        for name in APP_SERVICES
    }
    assert len(set(images.values())) == 1, (
        f"{rel(COMPOSE)}: api, worker and migrate run different images: {images}"
    )
    assert services["migrate"].get("restart") == "no", (
        f"{rel(COMPOSE)}: a finished migration must not restart"
    )
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", (
            f"{rel(COMPOSE)} {name}: starts before the migration ends"
        )


def test_compose_redis_keeps_its_queue() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    assert " ".join(command).count("--appendonly yes") == 1, f"{rel(COMPOSE)}: redis runs without appendonly"
    assert any(str(v).endswith(":/data") for v in redis.get("volumes", [])), (
        f"{rel(COMPOSE)}: redis /data is not a volume"
    )


def test_api_and_workers_share_one_blob_volume() -> None:
    blob_dir = str(settings_from(compose_env("api")).resolved_blob_dir)
    services = compose()["services"]
    mounts = {
        name: [v for v in services[name].get("volumes", []) if v.endswith(f":{blob_dir}")]
        for name in ("api", "worker")
    }
    assert mounts["api"] == mounts["worker"] != [], (
        f"{rel(COMPOSE)}: api and worker do not share {blob_dir}: {mounts}"
    )
    for component in ("api", "worker"):
        doc = workload(component)
        blob_dir = str(settings_from(k8s_env(doc)).resolved_blob_dir)
        (mount,) = [m for m in main_container(doc)["volumeMounts"] if m["mountPath"] == blob_dir]
        (volume,) = [v for v in pod_spec(doc)["volumes"] if v["name"] == mount["name"]]
        claim = k8s_object("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], (
            f"deploy/k8s {component}: blob claim not shared"
        )


# --- the image --------------------------------------------------------------------------------------


def test_the_image_is_multi_stage_and_runs_unprivileged() -> None:
    instructions = dockerfile()
    assert sum(i.keyword == "FROM" for i in instructions) >= 2, f"{rel(DOCKERFILE)}: not multi-stage"
    final = [i for i in instructions if i.stage == instructions[-1].stage]
    keywords = [i.keyword for i in final]
    assert "USER" in keywords, f"{rel(DOCKERFILE)}: the final stage runs as root"
    assert keywords.index("USER") < keywords.index("CMD"), f"{rel(DOCKERFILE)}: USER comes after CMD"
    user = final[keywords.index("USER")].args.split(":")[0]
    assert user not in {"root", "0"}, f"{rel(DOCKERFILE)}: USER {user}"
    for component in APP_SERVICES:
        context = pod_spec(workload(component))["securityContext"]
        assert context.get("runAsNonRoot") is True, f"deploy/k8s {component}: runAsNonRoot is not set"
        assert str(context.get("runAsUser")) == user, (
            f"deploy/k8s {component}: runAsUser is not the image's {user}"
        )


def test_the_image_has_both_slicers_and_curas_definitions() -> None:
    runs = " ".join(i.args for i in dockerfile() if i.keyword == "RUN")
    install = re.search(r"apt-get install ([^&;]*)", runs)
    assert install, f"{rel(DOCKERFILE)}: no apt-get install"
    packages = install.group(1).split()
    assert {"prusa-slicer", "cura-engine", "--no-install-recommends"} <= set(packages), (
        f"{rel(DOCKERFILE)}: {packages}"
    )
    # Debian's `cura` is the GUI: unpacked for its definitions, never installed.
    assert "apt-get download cura" in runs, f"{rel(DOCKERFILE)}: Cura's definitions are not fetched"
    assert "dpkg-deb -x" in runs, f"{rel(DOCKERFILE)}: Cura's package is not unpacked"
    cura_dir = Path(dockerfile_env().get(f"{PREFIX}CURA_RESOURCES_DIR", "/unset"))
    copied_from_stages = [
        Path(i.args.split()[-1]) for i in dockerfile() if i.keyword == "COPY" and "--from=" in i.args
    ]
    assert any(cura_dir.is_relative_to(dest) for dest in copied_from_stages), (
        f"{rel(DOCKERFILE)}: {PREFIX}CURA_RESOURCES_DIR={cura_dir} is not where the definitions are copied"
    )


def test_the_image_copies_what_the_package_build_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied: set[str] = set()
    for instruction in dockerfile():
        words = instruction.args.split()
        if instruction.keyword == "COPY" and not any(w.startswith("--from") for w in words):
            sources = [w for w in words[:-1] if not w.startswith("--")]
            copied |= {source.rstrip("/") for source in sources}
    assert sorted(s for s in copied if not (ROOT / s).exists()) == [], (
        f"{rel(DOCKERFILE)} copies what is not there"
    )
    assert sorted(needed - copied) == [], f"{rel(DOCKERFILE)}: the build stage lacks these"
