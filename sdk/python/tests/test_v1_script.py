"""A typical Azure ML SDK v1 driver and training script (v1_script/), changed only in their imports, run
against the session's server: a cluster, an Environment from a conda specification with pip packages,
metrics of every kind, an image, a tag, an uploaded file, the streamed log, get_metrics and
download_files."""
import os
import shutil
import subprocess
import sys

from conftest import SDK

HERE = os.path.dirname(os.path.abspath(__file__))


def test_v1_training_script_runs_unchanged_but_its_imports(server, ws, tmp_path):
    work = tmp_path / "v1"
    shutil.copytree(os.path.join(HERE, "v1_script"), str(work))
    env = dict(os.environ, PYTHONPATH=SDK, PADDOCK_CONFIG=server["config"], PYTHONWARNINGS="always")
    p = subprocess.run([sys.executable, "submit.py"], cwd=str(work), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600, text=True)
    out = p.stdout
    assert p.returncode == 0, out
    assert "Traceback" not in out and "Warning" not in out, out
    # the streamed log: the script ran in the conda specification's venv
    assert "Streaming log:" in out and "python 3." in out and " venv" in out and "training done" in out, out
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
