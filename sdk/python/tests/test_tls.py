"""The SDK against a real `paddock up --tls`: it pins the CA the server wrote into the config, a run posts its
metrics over HTTPS trusting PADDOCK_CA_FILE, and a client without the CA, or speaking HTTP, is refused clearly."""
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import _kill_pidfile
from paddock import Experiment, ScriptRunConfig, Workspace
from paddock.exceptions import PaddockException


@pytest.fixture(scope="module")
def tls_server(server):
    tmp = tempfile.mkdtemp(prefix="paddock-sdk-tls-")
    data = os.path.join(tmp, "data")
    cfg = os.path.join(tmp, "config")
    env = dict(os.environ, PADDOCK_CONFIG=cfg, HOME=tmp)
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen([server["binary"], "up", "--tls", "--listen", "127.0.0.1:0", "--data-dir", data], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    doc = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(cfg) as f:
                doc = json.load(f)
            ctx = ssl.create_default_context(cadata=doc["ca"])
            with urllib.request.urlopen(doc["server"] + "/healthz", timeout=2, context=ctx) as r:
                if r.status == 200:
                    break
        except Exception:  # noqa: BLE001 - not serving yet
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        proc.wait()
        pytest.fail("paddock up --tls did not come up: %s" % open(os.path.join(tmp, "server.log")).read()[-2000:])
    yield {"config": cfg, "doc": doc, "ca_file": os.path.join(data, "tls", "ca.pem"), "tmp": tmp}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    _kill_pidfile(os.path.join(data, "local-agent", "agent.pid"))
    shutil.rmtree(tmp, ignore_errors=True)


def test_config_pins_the_servers_ca(tls_server):
    doc = tls_server["doc"]
    assert doc["server"].startswith("https://127.0.0.1:")
    assert doc["ca"].startswith("-----BEGIN CERTIFICATE-----")
    ws = Workspace.from_config(tls_server["config"])
    assert ws.server == doc["server"]
    assert "local" in ws.compute_targets
    assert ws._client.context is not None


def test_run_posts_metrics_over_https(tls_server, src, capsys):
    # train.py logs a metric with Run.get_context(): it reaches PADDOCK_API_URL (https) trusting PADDOCK_CA_FILE.
    (src / "ca.py").write_text(
        "import os\n"
        "ca = os.environ['PADDOCK_CA_FILE']\n"
        "print('api', os.environ['PADDOCK_API_URL'], 'ca', open(ca).read().startswith('-----BEGIN CERTIFICATE-----'))\n"
        "exec(open('train.py').read())\n")
    ws = Workspace.from_config(tls_server["config"])
    run = Experiment(ws, "sdk-tls").submit(ScriptRunConfig(source_directory=str(src), script="ca.py",
                                                           compute_target="local"))
    details = run.wait_for_completion(show_output=True, timeout_seconds=90)
    log = capsys.readouterr().out
    assert details["status"] == "Completed", log
    assert "api https://127.0.0.1:" in log and " ca True" in log, log
    assert run.get_metrics() == {"accuracy": 0.9}


def test_client_without_the_ca_is_refused(tls_server, monkeypatch, tmp_path):
    doc = tls_server["doc"]
    monkeypatch.setenv("PADDOCK_CONFIG", str(tmp_path / "no-config"))
    monkeypatch.delenv("PADDOCK_CA_FILE", raising=False)
    ws = Workspace(server=doc["server"], token=doc["token"], workspace="default")
    with pytest.raises(PaddockException) as ei:
        ws.compute_targets
    msg = str(ei.value)
    assert "certificate" in msg and "PADDOCK_CA_FILE" in msg, msg
    # given the CA file, the same client works; PADDOCK_CA_FILE does the same
    ws = Workspace(server=doc["server"], token=doc["token"], workspace="default", ca_file=tls_server["ca_file"])
    assert "local" in ws.compute_targets
    monkeypatch.setenv("PADDOCK_CA_FILE", tls_server["ca_file"])
    assert "local" in Workspace(server=doc["server"], token=doc["token"], workspace="default").compute_targets


def test_http_to_the_https_server_fails_clearly(tls_server, monkeypatch, tmp_path):
    doc = tls_server["doc"]
    monkeypatch.setenv("PADDOCK_CONFIG", str(tmp_path / "no-config"))
    ws = Workspace(server=doc["server"].replace("https://", "http://"), token=doc["token"], workspace="default")
    with pytest.raises(PaddockException) as ei:
        ws.compute_targets
    assert "HTTPS" in str(ei.value), str(ei.value)


def test_write_config_keeps_the_ca(tls_server, tmp_path):
    ws = Workspace.from_config(tls_server["config"])
    path = ws.write_config(str(tmp_path))
    with open(path) as f:
        assert json.load(f)["ca"] == tls_server["doc"]["ca"]
    assert "local" in Workspace.from_config(path).compute_targets
