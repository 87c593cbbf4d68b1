"""A Kubernetes namespace attached with KubernetesCompute, against the control plane scripts/dev-k8s.sh starts
(CI starts it; elsewhere this skips, naming the command, and fails in CI)."""
import json
import os
import re
import ssl
import time
import urllib.request
import uuid

import pytest

from paddock import Experiment, ScriptRunConfig
from paddock.compute import ComputeTarget, KubernetesCompute


def _dev_kubeconfig():
    base = os.environ.get("PADDOCK_K8S_DIR") or "/tmp/paddock-k8s"
    return os.path.join(base, "state", "kubeconfig")


class _Kube:
    """The dev cluster's API with its admin token (the tests never use $KUBECONFIG: they make and delete
    objects)."""

    def __init__(self, path):
        text = open(path).read()
        self.server = re.search(r'server: "([^"]+)"', text).group(1)
        self.token = re.search(r'token: "([^"]+)"', text).group(1)
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.server + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return json.load(r)


@pytest.fixture
def kube(tmp_path):
    path = _dev_kubeconfig()
    try:
        k = _Kube(path)
        k.call("GET", "/version")
    except Exception as e:  # noqa: BLE001 - no cluster, whatever the reason
        if os.environ.get("CI"):
            pytest.fail("no Kubernetes control plane at %s (.ci/run starts one with scripts/dev-k8s.sh): %s" % (path, e))
        pytest.skip("no Kubernetes control plane: `bash scripts/dev-k8s.sh start` "
                    "(as root, `bash scripts/test.sh` starts one)")
    ns = "pdk-sdk-" + uuid.uuid4().hex[:8]
    k.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    k.ns = ns
    k.kubeconfig = str(tmp_path / "admin.kubeconfig")
    with open(k.kubeconfig, "w") as f:
        f.write(open(path).read())
    yield k
    try:
        k.call("DELETE", "/api/v1/namespaces/" + ns)
    except Exception:  # noqa: BLE001 - best effort
        pass


def test_kubernetes_attach_and_submit(ws, kube, src):
    cfg = KubernetesCompute.attach_configuration(namespace=kube.ns, kubeconfig_file=kube.kubeconfig,
                                                 instance_types={"small": {"cpu": "1", "memory": "2Gi"}})
    assert "***" in repr(cfg) and kube.token not in repr(cfg)
    compute = ComputeTarget.attach(ws, "sdk-k8s", cfg)
    try:
        assert isinstance(compute, KubernetesCompute)
        compute.wait_for_completion(show_output=True, timeout_in_minutes=1)
        st = compute.get_status()
        assert st.reachable is True and st.node_count >= 1 and st.cores >= 32
        assert any(n["name"] == "kwok-node-0" for n in st.nodes)
        assert compute.namespace == kube.ns and compute.instance_types["small"]["memory"] == "2Gi"
        assert "kubeconfig" not in compute.properties

        run = Experiment(ws, "sdk-k8s").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                               compute_target=compute))
        jobs = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = kube.call("GET", "/apis/batch/v1/namespaces/%s/jobs?labelSelector=paddock.dev/run%%3D%s"
                             % (kube.ns, run.id))["items"]
            reason = run.get_details().get("status_reason") or ""
            if jobs and "waiting for its agent to connect" in reason:
                break
            time.sleep(0.2)
        assert jobs, "no Job for the run"
        pod = jobs[0]["spec"]["template"]["spec"]
        res = pod["containers"][0]["resources"]
        assert res["limits"] == {"cpu": "1", "memory": "2Gi"}  # the instance type
        assert "--one-run" in pod["containers"][0]["args"]
        assert "waiting for its agent to connect" in run.get_details()["status_reason"]
        run.cancel()
        assert run.get_status() == "Canceled"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not kube.call("GET", "/apis/batch/v1/namespaces/%s/jobs" % kube.ns)["items"]:
                break
            time.sleep(0.2)
        assert not kube.call("GET", "/apis/batch/v1/namespaces/%s/jobs" % kube.ns)["items"]
    finally:
        compute.detach()
