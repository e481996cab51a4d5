"""The Kubernetes manifests: every kustomization renders and validates offline, and says what we mean.

Rendering uses ``kubectl kustomize``; validation uses ``kubernetes-validate
--strict`` with the schemas it ships, for the oldest Kubernetes with native
gRPC probes (1.27) and the newest it knows. The rest reads the rendered
objects the way the cluster would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from bench.process import ServerProcess
from digitserve.settings import variables
from digitserve.v1 import digits_pb2 as pb
from server.settings import SETTINGS, parse_settings
from tests.conftest import ROOT, free_port

DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("overlays/dev", "overlays/prod")
# Every kustomization of ours; kserve/ is its own set of manifests, with custom resources.
KUSTOMIZATIONS = sorted(str(p.parent.relative_to(DEPLOY)) for p in DEPLOY.rglob("kustomization.yaml")
                        if "kserve" not in p.parts)
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None,
                                reason="kubectl not found: the manifests are rendered with `kubectl kustomize`")

_rendered: dict[str, str] = {}


def render(kustomization: str) -> str:
    if kustomization not in _rendered:
        done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / kustomization)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl kustomize {kustomization}: {done.stderr}"
        _rendered[kustomization] = done.stdout
    return _rendered[kustomization]


def objects(kustomization: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render(kustomization)) if doc]


def find(kustomization: str, kind: str, name: str | None = None) -> dict:
    matches = [o for o in objects(kustomization) if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"{kustomization}: expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container(workload: dict) -> dict:
    spec = workload["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def env(workload: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def env_values(workload: dict) -> dict[str, str]:
    return {name: e["value"] for name, e in env(workload).items() if "value" in e}


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(Mi|Gi)", quantity).groups()
    return float(number) * (1024 if unit == "Gi" else 1)


def test_every_kustomization_is_tested():
    assert {"base", "base/trainer", "overlays/dev", "overlays/prod", "retrain"} <= set(KUSTOMIZATIONS)


@pytest.mark.heavy
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", ["1.27.0", "1.37.0"])
def test_every_kustomization_renders_and_validates_strictly(kustomization, version, tmp_path):
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render(kustomization))
    done = subprocess.run([str(VALIDATE), "--strict", "--quiet", "-k", version, str(rendered)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert objects(kustomization)


def test_strict_validation_rejects_a_misspelt_field(tmp_path):
    """The check above can fail: a typo in a field name does not pass."""
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render("overlays/dev").replace("minReadySeconds", "minReadySecond"))
    done = subprocess.run([str(VALIDATE), "--strict", "--quiet", str(rendered)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "minReadySecond" in done.stdout + done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_native_grpc_on_the_plaintext_health_port(overlay):
    server = find(overlay, "Deployment", "digitserve-server")
    ports = {p["name"]: p["containerPort"] for p in container(server)["ports"]}
    assert int(env_values(server)["DIGITS_HEALTH_PORT"]) == ports["health"] != ports["grpc"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container(server)[probe]
        assert set(spec) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert spec["grpc"]["port"] == ports["health"], probe
    startup = container(server)["startupProbe"]
    # Long enough for a first deploy, where the trainer Job fills the volume while the server waits.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def pre_stop_seconds(server: dict) -> int:
    """How long the server's preStop hook waits: Python's sleep, as the image has no shell."""
    command = container(server)["lifecycle"]["preStop"]["exec"]["command"]
    found = re.fullmatch(r"import time; time\.sleep\((\d+)\)", command[-1])
    assert command[:2] == ["python", "-c"] and found, command
    return int(found[1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_the_servers_own_grace(overlay):
    server = find(overlay, "Deployment", "digitserve-server")
    grace = parse_settings([], environ=env_values(server)).grace
    assert grace == float(env_values(server)["DIGITS_GRACE"])
    needed = pre_stop_seconds(server) + grace
    assert needed < server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] <= needed + 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rolling_updates_keep_every_replica_until_its_successor_is_ready(overlay):
    strategy = find(overlay, "Deployment", "digitserve-server")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("overlay, replicas, hpa_bounds", [("overlays/dev", 1, (1, 1)),
                                                           ("overlays/prod", 3, (3, 10))])
def test_replicas_and_autoscaling_per_overlay(overlay, replicas, hpa_bounds):
    server = find(overlay, "Deployment", "digitserve-server")
    hpa = find(overlay, "HorizontalPodAutoscaler")
    assert server["spec"]["replicas"] == replicas
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == hpa_bounds
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "digitserve-server"}
    pdb = find(overlay, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1  # a one-replica deployment can still be drained
    assert {o["metadata"].get("namespace") for o in objects(overlay) if o["kind"] != "Namespace"} == \
        {find(overlay, "Namespace")["metadata"]["name"]}


def test_prod_serves_tls_and_takes_the_token_from_a_secret_dev_neither():
    prod = find("overlays/prod", "Deployment", "digitserve-server")
    settings = parse_settings([], environ={**env_values(prod), "DIGITS_TOKEN": "from-the-secret"})
    mounts = {m["name"]: m for m in container(prod)["volumeMounts"]}
    volumes = {v["name"]: v for v in prod["spec"]["template"]["spec"]["volumes"]}
    tls_mount = mounts["tls"]["mountPath"]
    assert settings.tls_cert == f"{tls_mount}/tls.crt" and settings.tls_key == f"{tls_mount}/tls.key"
    assert mounts["tls"]["readOnly"] and volumes["tls"]["secret"]["secretName"] == "digitserve-tls"
    assert env(prod)["DIGITS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "digitserve-token", "key": "token"}

    dev = find("overlays/dev", "Deployment", "digitserve-server")
    assert not {"DIGITS_TLS_CERT", "DIGITS_TLS_KEY", "DIGITS_TOKEN"} & set(env(dev))


def referenced_secrets(workload: dict) -> set[str]:
    spec = workload["spec"]["template"]["spec"]
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for c in spec["containers"]:
        names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})}
        names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
    return names


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_secret_used_is_rendered_or_the_operator_is_told_to_create_it(kustomization):
    shipped = {o["metadata"]["name"] for o in objects(kustomization) if o["kind"] == "Secret"}
    used = set().union(*(referenced_secrets(o) for o in objects(kustomization)
                         if o["kind"] in ("Deployment", "Job")))
    instructions = (DEPLOY / kustomization / "kustomization.yaml").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in used - shipped:
        command = re.compile(rf"kubectl -n \S+ create secret \w+ {name} ")
        assert command.search(instructions), f"{kustomization}/kustomization.yaml does not say how to create {name}"
        assert command.search(readme), f"README.md does not say how to create the secret {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_unprivileged_with_read_only_roots(overlay):
    for workload in (find(overlay, "Deployment"), find(overlay, "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container(workload)["resources"]["requests"] and container(workload)["resources"]["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_trainer_writes_the_models_volume_and_the_servers_only_read_it(overlay):
    claim = find(overlay, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    server, trainer = find(overlay, "Deployment"), find(overlay, "Job")
    for workload, read_only in ((server, True), (trainer, False)):
        volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v)
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        mount = next(m for m in container(workload)["volumeMounts"] if m["name"] == volume["name"])
        assert mount.get("readOnly", False) is read_only
        assert mount["mountPath"] == env_values(workload)["DIGITS_MODELS_DIR"]
        assert volume["persistentVolumeClaim"].get("readOnly", False) is read_only
    assert container(trainer)["args"] == ["--if-missing"]
    assert trainer["spec"]["backoffLimit"] >= 1
    assert "--watch" in container(server).get("args", []) or float(env_values(server)["DIGITS_WATCH"]) > 0

    retrain = find("retrain", "Job")
    assert container(retrain)["args"] == ["--force"]
    assert retrain["spec"]["template"]["metadata"]["labels"] == trainer["spec"]["template"]["metadata"]["labels"]
    assert next(v for v in retrain["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v) \
        == next(v for v in trainer["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v)


def test_server_memory_is_sized_from_the_benchmark():
    peak_mb = json.loads((ROOT / "bench" / "results.json").read_text())["server"]["peak_memory_mb"]
    resources = container(find("overlays/prod", "Deployment"))["resources"]
    request, limit = mebibytes(resources["requests"]["memory"]), mebibytes(resources["limits"]["memory"])
    assert peak_mb * 1e6 / 2**20 <= request <= limit <= 2 * request


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_the_metrics_port(overlay):
    server = find(overlay, "Deployment", "digitserve-server")
    annotations = server["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container(server)["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"] == \
        parse_settings([], environ=env_values(server)).metrics_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_trainer_and_clients_reach_the_grpc_port(overlay):
    server, trainer = find(overlay, "Deployment"), find(overlay, "Job")
    policy = find(overlay, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    # The health port is absent: the kubelet probes from the pod's node, which a NetworkPolicy never blocks.
    assert set(by_port) == {"grpc", "metrics"}
    trainer_labels = trainer["spec"]["template"]["metadata"]["labels"]
    sources = [peer["podSelector"]["matchLabels"] for peer in by_port["grpc"]]
    assert any(labels.items() <= trainer_labels.items() for labels in sources)
    assert {"digitserve/client": "true"} in sources
    assert len(sources) == 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_cluster_ip_and_a_headless_service_reach_the_grpc_port(overlay):
    server = find(overlay, "Deployment")
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    services = {s["metadata"]["name"]: s["spec"] for s in objects(overlay) if s["kind"] == "Service"}
    assert services["digitserve-headless"]["clusterIP"] == "None"
    assert services["digitserve"].get("type", "ClusterIP") == "ClusterIP"
    for spec in services.values():
        assert spec["selector"].items() <= pod_labels.items()
        assert [(p["port"], p["targetPort"]) for p in spec["ports"]] == [(50051, "grpc")]
    assert int(env_values(server)["DIGITS_PORT"]) == 50051


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_server_setting_in_the_manifests_exists(overlay):
    server = find(overlay, "Deployment")
    known = variables(SETTINGS)
    used = set(env(server))
    assert used - known == set(), "the manifests set variables digits-server does not read"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_trainer_variable_in_the_manifests_is_read_by_the_trainer(overlay):
    sources = "".join(p.read_text() for p in (ROOT / "trainer").glob("*.py"))
    for name in env(find(overlay, "Job")):
        assert f'"{name}"' in sources, f"the trainer reads no {name}"


def test_the_readme_walks_an_operator_through_deploy_scale_retrain_and_rollout():
    readme = (ROOT / "README.md").read_text()
    for command in ("kubectl apply -k deploy/kubernetes/overlays/prod",
                    "kubectl -n digitserve apply -k deploy/kubernetes/retrain",
                    "kubectl -n digitserve rollout status deployment/digitserve-server",
                    "kubectl -n digitserve patch hpa digitserve-server"):
        assert command in readme


@pytest.mark.heavy
def test_the_dev_servers_environment_starts_a_real_server(models_copy):
    """digits-server with exactly the dev Deployment's variables (ports moved to free loopback ones) serves,
    and /metrics answers where the scrape annotation points."""
    server = find("overlays/dev", "Deployment")
    metrics_port = free_port()
    environment = {**env_values(server), "DIGITS_MODELS_DIR": str(models_copy),
                   "DIGITS_METRICS_PORT": str(metrics_port), "DIGITS_HEALTH_PORT": str(free_port()),
                   "DIGITS_HEALTH_HOST": "127.0.0.1"}
    process = ServerProcess(models_copy, env=environment)
    try:
        assert process.stub.Predict(pb.PredictRequest(u8=bytes(784))).model == "ensemble"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            assert b'digits_model_info{default="true"' in reply.read()
    finally:
        assert process.stop() == 0
