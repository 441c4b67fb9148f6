"""The deployment files agree with the code: compose, the observability configuration, the
Grafana dashboard and the Kubernetes manifests (pure parsing, no services)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from pydantic import AliasChoices

import notifyhub.observability.metrics
from notifyhub.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = ROOT / "deployments"
COMPOSE_FILE = DEPLOYMENTS / "docker-compose.yml"
OBSERVABILITY = DEPLOYMENTS / "observability"
K8S = DEPLOYMENTS / "k8s"
DASHBOARD_FILES = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
K8S_FILES = sorted(K8S.glob("*.yaml"))

# Our own image: the one tag-less/"dev" exception to pinning.
WORKER_IMAGE_REPO = "notifyhub/worker"
WORKER_STATEFULSET = "notifyhub-worker"
NAMESPACE = "notifyhub"
# Manifests kept out of kustomization.yaml on purpose (see their comments).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "migrate-job.yaml", "kustomization.yaml"}
OBSERVABILITY_SERVICES = ("prometheus", "grafana", "otel-collector", "tempo")
# Stands in for the pod IP that the Kubernetes downward API gives NOTIFYHUB_WEB_HOST.
FIELD_REF_PLACEHOLDER = "10.0.0.1"
METRIC_TOKEN = re.compile(r"notifyhub_[a-z0-9_]+")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


# --- loading ---------------------------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def compose() -> dict[str, Any]:
    return cast(dict[str, Any], _load(COMPOSE_FILE))


def service(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], compose()["services"][name])


def interpolate(value: object) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def compose_env(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def container_to_host(service_name: str, container_path: str) -> Path:
    """The host path a compose service sees at ``container_path`` through a bind mount."""
    target = PurePosixPath(container_path)
    for volume in service(service_name).get("volumes", []):
        source, mount, *_ = volume.split(":")
        if not source.startswith((".", "/")):
            continue  # a named volume
        mount = PurePosixPath(mount)
        if target == mount or mount in target.parents:
            return cast(Path, (COMPOSE_FILE.parent / source / target.relative_to(mount)).resolve())
    raise AssertionError(f"{service_name} has no bind mount holding {container_path}")


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((path.name, doc) for path in K8S_FILES for doc in _load_all(path))


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in k8s_docs()
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def statefulset() -> dict[str, Any]:
    return k8s("StatefulSet", WORKER_STATEFULSET)


def worker_container() -> dict[str, Any]:
    (container,) = [
        c for c in statefulset()["spec"]["template"]["spec"]["containers"] if c["name"] == "worker"
    ]
    return cast(dict[str, Any], container)


def pod_spec_env(pod_spec: dict[str, Any]) -> dict[str, str]:
    """What a pod's containers see: their envFrom ConfigMaps/Secrets, then their env."""
    env: dict[str, str] = {}
    for container in pod_spec["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(k8s("ConfigMap", source["configMapRef"]["name"])["data"])
            if "secretRef" in source:
                secret = _secret_example(source["secretRef"]["name"])
                env.update(secret.get("stringData") or {})
        for item in container.get("env", []):
            env[item["name"]] = item["value"] if "value" in item else FIELD_REF_PLACEHOLDER
    return {key: str(value) for key, value in env.items()}


def _secret_example(name: str) -> dict[str, Any]:
    (secret,) = [
        doc
        for doc in _load_all(K8S / "secret.example.yaml")
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == name
    ]
    return secret


def worker_k8s_env() -> dict[str, str]:
    return pod_spec_env(statefulset()["spec"]["template"]["spec"])


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}, f"{port} not exposed"
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return cast(int, number)


@cache
def known_settings() -> frozenset[str]:
    """The environment variables NotifyHub's settings read."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(field_name.upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


def is_setting(name: str) -> bool:
    # OTEL_*: the OpenTelemetry SDK's own variables (notifyhub/observability/tracing.py defers to them).
    return name.upper() in known_settings() or name.startswith("OTEL_")


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in known_settings():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


# --- environment variables are settings --------------------------------------------------


def _env_sources() -> Iterator[tuple[str, str]]:
    for name in compose_env("worker"):
        yield "compose worker", name
    for name in k8s("ConfigMap", "notifyhub-config")["data"]:
        yield "ConfigMap", name
    for name in _secret_example("notifyhub-secrets")["stringData"]:
        yield "Secret example", name
    for _, doc in k8s_docs():
        for container in _containers(doc):
            for item in container.get("env", []):
                yield f"{doc['kind']} {doc['metadata']['name']}", item["name"]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") in ("StatefulSet", "Deployment", "Job"):
        spec = doc["spec"]["template"]["spec"]
        return cast(list[dict[str, Any]], spec.get("initContainers", []) + spec["containers"])
    return []


@pytest.mark.parametrize(("source", "name"), list(_env_sources()))
def test_every_environment_variable_is_a_setting(source: str, name: str) -> None:
    assert is_setting(name), f"{source} sets {name}, which NotifyHub does not read"


def test_known_settings_include_aliases_and_plain_names() -> None:
    # Guards the collection itself: an aliased, an unaliased, and no made-up name.
    assert {"NOTIFYHUB_WEB_PORT", "DATABASE_URL", "TWILIO_ACCOUNT_SID"} <= known_settings()
    assert not is_setting("NOTIFYHUB_NO_SUCH_SETTING")


def test_compose_worker_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose_env("worker")
    settings = settings_from(env, monkeypatch)
    assert settings.web_bind == "0.0.0.0"
    assert settings.web_host == "worker", "other workers reach it by its service name"
    assert settings.trace_exporter == "none"
    assert settings.log_format == "json"
    assert env["OTEL_SERVICE_NAME"] == "notifyhub"


def test_k8s_worker_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(worker_k8s_env(), monkeypatch)
    container = worker_container()
    assert settings.web_port == container_port(container, "http")
    assert settings.table_standby_replicas == 1
    assert settings.web_bind == "0.0.0.0", "probes and the Service reach every interface"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in statefulset()["spec"]["volumeClaimTemplates"]}
    data_mounts = [path for name, path in mounts.items() if name in claims]
    assert data_mounts == [str(settings.data_dir)], "the PVC must hold NOTIFYHUB_DATA_DIR"


def test_migrate_job_reads_the_same_settings_as_the_workers() -> None:
    job = k8s("Job", "notifyhub-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "migrate" in container["command"] + container.get("args", [])
    assert container["envFrom"] == worker_container()["envFrom"]
    assert container["image"] == worker_container()["image"]


# --- compose ---------------------------------------------------------------------------


def _image_services() -> list[str]:
    return [name for name, svc in compose()["services"].items() if "image" in svc]


@pytest.mark.parametrize("name", _image_services())
def test_compose_images_are_pinned(name: str) -> None:
    image = service(name)["image"]
    resolved = interpolate(image)
    repo, tag = resolved.rsplit(":", 1) if ":" in resolved.rsplit("/", 1)[-1] else (resolved, "")
    if repo == WORKER_IMAGE_REPO:
        assert "build" in service(name), "our image is built by compose"
        return
    assert "$" not in image, f"{name}: {image} can be changed from the environment"
    assert "@sha256:" in image or tag not in ("", "latest"), f"{name}: {image} is not pinned"


def test_compose_and_k8s_use_the_same_worker_image() -> None:
    compose_image = interpolate(service("worker")["image"])
    assert compose_image.startswith(f"{WORKER_IMAGE_REPO}:")
    images = {c["image"] for _, doc in k8s_docs() for c in _containers(doc)}
    assert images == {compose_image}


@pytest.mark.parametrize("name", OBSERVABILITY_SERVICES)
def test_observability_services_are_in_their_profile(name: str) -> None:
    assert service(name)["profiles"] == ["observability"]


@pytest.mark.parametrize("name", list(compose()["services"]))
def test_default_services_do_not_depend_on_profiled_ones(name: str) -> None:
    if service(name).get("profiles"):
        return
    for dependency in service(name).get("depends_on", []):
        assert not service(dependency).get("profiles"), (
            f"{name} depends on {dependency}, which only runs with its profile"
        )


def _bind_mounts() -> list[tuple[str, str]]:
    return [
        (name, volume.split(":")[0])
        for name, svc in compose()["services"].items()
        for volume in svc.get("volumes", [])
        if volume.startswith((".", "/"))
    ]


@pytest.mark.parametrize(("name", "source"), _bind_mounts())
def test_compose_bind_mounts_exist(name: str, source: str) -> None:
    assert (COMPOSE_FILE.parent / source).exists(), f"{name} mounts missing {source}"


def test_compose_documents_the_observability_profile() -> None:
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    command = "docker compose -f deployments/docker-compose.yml --profile observability up --build"
    assert command in header
    assert "NOTIFYHUB_TRACE_EXPORTER=otlp" in header


def test_worker_sends_spans_to_the_collectors_http_receiver() -> None:
    endpoint = urlsplit(compose_env("worker")["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector" and endpoint.hostname in compose()["services"]
    http = _load(OBSERVABILITY / "otel-collector.yaml")["receivers"]["otlp"]["protocols"]["http"]
    assert endpoint.port == _port(http["endpoint"])


# --- Prometheus, collector, Tempo, Grafana ------------------------------------------------


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _config_of(service_name: str, container_path: str) -> Any:
    return _load(container_to_host(service_name, container_path))


def test_prometheus_scrapes_the_workers_metrics() -> None:
    config_flag = next(
        arg for arg in service("prometheus")["command"] if arg.startswith("--config.file=")
    )
    config = _config_of("prometheus", config_flag.split("=", 1)[1])
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "notifyhub"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    worker_port = int(compose_env("worker")["NOTIFYHUB_WEB_PORT"])
    assert targets == [f"worker:{worker_port}"]


def test_collector_exports_traces_to_tempo() -> None:
    command = service("otel-collector")["command"]
    config_path = next(arg for arg in command if arg.startswith("--config="))
    config = _config_of("otel-collector", config_path.split("=", 1)[1])
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert exporters, "the traces pipeline exports nowhere"
    tempo_command = service("tempo")["command"]
    tempo_flag = next(arg for arg in tempo_command if arg.startswith("-config.file="))
    tempo = _config_of("tempo", tempo_flag.split("=", 1)[1])
    protocols = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    for name in exporters:
        exporter = config["exporters"][name]
        kind = name.split("/")[0]
        endpoint = exporter["endpoint"]
        target = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
        assert target.hostname == "tempo", f"{name} exports to {target.hostname}"
        assert service("tempo")["image"].startswith("grafana/tempo:")
        protocol = {"otlp": "grpc", "otlphttp": "http"}[kind]
        assert target.port == _port(protocols[protocol]["endpoint"])


@cache
def provisioned_datasources() -> dict[str, dict[str, Any]]:
    path = container_to_host("grafana", "/etc/grafana/provisioning/datasources")
    sources = [
        source for file in sorted(path.glob("*.y*ml")) for source in _load(file).get("datasources", [])
    ]
    return {source["uid"]: source for source in sources}


def test_grafana_datasources_reach_prometheus_and_tempo() -> None:
    sources = provisioned_datasources()
    assert {s["type"] for s in sources.values()} >= {"prometheus", "tempo"}
    prometheus_port = 9090
    tempo_flag = next(a for a in service("tempo")["command"] if a.startswith("-config.file="))
    tempo_port = _config_of("tempo", tempo_flag.split("=", 1)[1])["server"]["http_listen_port"]
    expected = {"prometheus": ("prometheus", prometheus_port), "tempo": ("tempo", tempo_port)}
    for source in sources.values():
        url = urlsplit(source["url"])
        assert (url.hostname, url.port) == expected[source["type"]], source["name"]


def test_grafana_dashboard_provider_points_at_the_dashboards() -> None:
    path = container_to_host("grafana", "/etc/grafana/provisioning/dashboards")
    providers = [p for file in sorted(path.glob("*.y*ml")) for p in _load(file)["providers"]]
    assert providers
    for provider in providers:
        folder = container_to_host("grafana", provider["options"]["path"])
        assert folder.is_dir() and sorted(folder.glob("*.json")) == DASHBOARD_FILES
    home = service("grafana")["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert container_to_host("grafana", home).is_file()


# --- the dashboard's metrics exist, and every metric is shown ---------------------------

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exposed_names(families: Any) -> set[str]:
    return {family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))}


@cache
def exposed() -> frozenset[str]:
    return frozenset(exposed_names(REGISTRY.collect()))


def _walk(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key:
                yield value
            yield from _walk(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _expressions() -> list[tuple[str, str]]:
    return [
        (path.name, expr)
        for path in DASHBOARD_FILES
        for expr in _walk(json.loads(path.read_text()), "expr")
    ]


def test_there_is_a_dashboard_with_queries() -> None:
    assert (OBSERVABILITY / "grafana" / "dashboards" / "notifyhub.json") in DASHBOARD_FILES
    assert len(_expressions()) >= 15


def test_exposed_names_follow_the_exposition_format() -> None:
    assert "notifyhub_provider_send_total" in exposed()  # counter: the name ends in _total
    assert "notifyhub_provider_send_total_total" not in exposed()
    assert "notifyhub_http_request_duration_seconds_bucket" in exposed()
    assert "notifyhub_http_request_duration_seconds" not in exposed()  # a histogram has no bare sample
    assert "notifyhub_held_messages" in exposed()


@pytest.mark.parametrize(("dashboard", "expr"), _expressions())
def test_dashboard_queries_only_existing_metrics(dashboard: str, expr: str) -> None:
    tokens = METRIC_TOKEN.findall(expr)
    assert tokens, f"{dashboard}: {expr!r} queries no NotifyHub metric"
    missing = sorted(set(tokens) - exposed())
    assert not missing, f"{dashboard}: {expr!r} queries unknown metrics {missing}"


def _defined_metrics() -> list[str]:
    return [
        name
        for name, value in vars(notifyhub.observability.metrics).items()
        if isinstance(value, MetricWrapperBase)
    ]


def test_metrics_module_defines_metrics() -> None:
    assert _defined_metrics(), "no metric found in notifyhub.observability.metrics"


@pytest.mark.parametrize("name", _defined_metrics())
def test_every_metric_is_on_the_dashboard(name: str) -> None:
    metric = getattr(notifyhub.observability.metrics, name)
    queried = {token for _, expr in _expressions() for token in METRIC_TOKEN.findall(expr)}
    assert exposed_names(metric.collect()) & queried, f"{name} is on no dashboard panel"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_datasources_are_provisioned(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    uids = {
        ds["uid"]
        for ds in _walk(dashboard, "datasource")
        if isinstance(ds, dict) and ds.get("type") != "grafana"
    }
    assert uids and uids <= set(provisioned_datasources())
    panels = dashboard["panels"] + [p for row in dashboard["panels"] for p in row.get("panels", [])]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


# --- Kubernetes ------------------------------------------------------------------------


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_k8s_manifests_parse_and_live_in_the_namespace(path: Path) -> None:
    docs = _load_all(path)
    assert docs
    for doc in docs:
        if doc["kind"] in ("Namespace", "Kustomization"):
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{path.name}: {doc['kind']}"


def test_kustomization_lists_the_manifests_but_not_the_secret_example() -> None:
    kustomization = _load(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    expected = {path.name for path in K8S_FILES} - NOT_IN_KUSTOMIZATION
    assert listed == expected
    assert kustomization.get("namespace") == NAMESPACE
    assert k8s("Namespace", NAMESPACE)


def test_secret_example_holds_the_secrets_with_placeholders() -> None:
    secret = _secret_example("notifyhub-secrets")["stringData"]
    required = {
        "DATABASE_URL",
        "NOTIFYHUB_ADMIN_TOKEN",
        "NOTIFYHUB_WS_TOKEN_SECRET",
        "NOTIFYHUB_WEBHOOK_SECRET_KEY",
    }
    assert required <= set(secret)
    assert all("CHANGE-ME" in secret[name] for name in required)
    assert not required & set(k8s("ConfigMap", "notifyhub-config")["data"]), "secrets in the ConfigMap"


def test_statefulset_probes_use_the_health_routes_on_the_web_port() -> None:
    container = worker_container()
    web_port = int(worker_k8s_env()["NOTIFYHUB_WEB_PORT"])
    assert container_port(container, "http") == web_port
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/livez"
    startup = container["startupProbe"]
    for probe in [*probes.values(), startup["httpGet"]]:
        assert container_port(container, probe["port"]) == web_port
    # Table recovery can take minutes before the web server answers.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_statefulset_shuts_down_gracefully_and_has_resources() -> None:
    spec = statefulset()["spec"]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    resources = worker_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    assert spec["serviceName"] == k8s("Service", spec["serviceName"])["metadata"]["name"]


def test_statefulset_is_scraped_on_its_metrics_route() -> None:
    annotations = statefulset()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container_port(worker_container(), "http")


def _pod_labels() -> dict[str, str]:
    return cast(dict[str, str], statefulset()["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize(
    ("name", "port", "headless"), [("notifyhub", 80, False), (WORKER_STATEFULSET, None, True)]
)
def test_services_route_to_the_workers_http_port(name: str, port: int | None, headless: bool) -> None:
    svc = k8s("Service", name)["spec"]
    assert svc["selector"].items() <= _pod_labels().items()
    assert (svc.get("clusterIP") == "None") is headless
    web_port = int(worker_k8s_env()["NOTIFYHUB_WEB_PORT"])
    for entry in svc["ports"]:
        if port is not None:
            assert entry["port"] == port
        assert container_port(worker_container(), entry.get("targetPort", entry["port"])) == web_port


def test_statefulset_selects_its_pods() -> None:
    assert statefulset()["spec"]["selector"]["matchLabels"].items() <= _pod_labels().items()


def test_hpa_scales_the_statefulset_up_to_the_partition_count(monkeypatch: pytest.MonkeyPatch) -> None:
    hpa = k8s("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "StatefulSet",
        WORKER_STATEFULSET,
    )
    partitions = settings_from(worker_k8s_env(), monkeypatch).topic_partitions
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
    resources = {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
    assert "cpu" in resources
    assert worker_container()["resources"]["requests"]["cpu"], "CPU utilisation needs a request"


def test_pdb_covers_the_workers() -> None:
    pdb = k8s("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= _pod_labels().items()
    assert "maxUnavailable" in pdb or "minAvailable" in pdb
