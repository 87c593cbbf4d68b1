"""A typical Azure ML SDK v1 driver and training script (v1_script/), changed only in their imports, run
against the session's server: a cluster, an Environment from a conda specification with pip packages,
metrics of every kind, an image, a tag, an uploaded file, the streamed log, get_metrics and
download_files."""
import base64
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile

from conftest import SDK

HERE = os.path.dirname(os.path.abspath(__file__))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _wheel(directory):
    """A pure-Python wheel of a package v1helper (VALUE = "from the wheel"), made by hand: a pip package
    the environment installs without reaching an index."""
    files = {"v1helper/__init__.py": b'VALUE = "from the wheel"\n',
             "v1helper-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: v1helper\nVersion: 1.0\n",
             "v1helper-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: paddock-tests\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    record = "".join("%s,sha256=%s,%d\n" % (name, base64.urlsafe_b64encode(hashlib.sha256(data).digest())
                                             .rstrip(b"=").decode(), len(data)) for name, data in files.items())
    files["v1helper-1.0.dist-info/RECORD"] = (record + "v1helper-1.0.dist-info/RECORD,,\n").encode()
    path = os.path.join(directory, "v1helper-1.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_v1_training_script_runs_unchanged_but_its_imports(server, ws, tmp_path):
    work = tmp_path / "v1"
    shutil.copytree(os.path.join(HERE, "v1_script"), str(work))
    # the environment's pip package: a wheel served on loopback, as a local package index would (runs see
    # neither the test's files nor the internet)
    wheels = tempfile.mkdtemp(prefix="paddock-v1-wheel-")
    wheel = os.path.basename(_wheel(wheels))
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=wheels))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/%s" % (httpd.server_address[1], wheel)
    spec = (work / "environment.yml").read_text()
    (work / "environment.yml").write_text(spec.replace("    - pip\n", "    - v1helper @ %s\n" % url))
    env = dict(os.environ, PYTHONPATH=SDK, PADDOCK_CONFIG=server["config"], PYTHONWARNINGS="always")
    p = subprocess.run([sys.executable, "submit.py"], cwd=str(work), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600, text=True)
    out = p.stdout
    assert p.returncode == 0, out
    assert "Traceback" not in out and "Warning" not in out, out
    # the streamed log: the script ran in the conda specification's venv
    httpd.shutdown()
    shutil.rmtree(wheels, ignore_errors=True)
    assert "Streaming log:" in out and "python 3." in out and " venv" in out and "training done" in out, out
    assert "v1helper from the wheel" in out, out
    assert "Status: Completed" in out, out
    assert "metric accuracy 0.93" in out and "metric optimizer adam" in out, out
    assert "metric loss [0.5, 0.25, 0.125]" in out, out
    assert "metric curve {'epoch': [0, 1, 2], 'loss': [0.5, 0.25, 0.125]}" in out, out
    assert "metric loss plot outputs/images/loss_plot.png" in out, out
    assert "tags [('stage', 'trained'), ('team', 'vision')]" in out, out
    for f in ("logs/run.log", "outputs/model.txt", "outputs/images/loss_plot.png", "notes/notes.txt"):
        assert f in out, f
    down = work / "downloaded"
    assert (down / "outputs" / "model.txt").read_text() == "weights"
    assert (down / "notes" / "notes.txt").read_text() == "trained for 3 epochs"
    assert (down / "outputs" / "images" / "loss_plot.png").read_bytes().startswith(b"\x89PNG")
    assert "training done" in (down / "logs" / "run.log").read_text()
