import os
import warnings

import pytest

from paddock import Environment, Experiment, PyTorchConfiguration, Run, ScriptRunConfig
from paddock.exceptions import ActivityFailedException, ExperimentExecutionException


def test_run_on_local_logs_metric_and_outputs(ws, src, tmp_path, capsys):
    cfg = ScriptRunConfig(source_directory=str(src), script="train.py", arguments=["--lr", 0.1],
                          compute_target="local")
    run = Experiment(ws, "sdk-tests").submit(cfg)
    details = run.wait_for_completion(show_output=True, timeout_seconds=90)
    out = capsys.readouterr().out
    assert "hello from train --lr 0.1" in out and "Status: Completed" in out
    # nothing that points a browser at the API, which answers 401 without a token
    assert "Web View" not in out and "/api/" not in out and "paddock run show " + run.id in out
    assert details["status"] == "Completed" and run.get_status() == "Completed"
    assert run.get_metrics() == {"accuracy": 0.9}
    files = run.download_files(prefix="outputs", output_directory=str(tmp_path / "dl"))
    assert files == [str(tmp_path / "dl" / "outputs" / "model.txt")]
    assert open(files[0]).read() == "weights"
    assert "outputs/model.txt" in run.get_file_names()
    assert any(r.id == run.id for r in Experiment(ws, "sdk-tests").get_runs())


def test_run_on_cluster_with_paddockignore(ws, cluster, src):
    (src / ".paddockignore").write_text("data/\n*.bin\n")
    (src / "data").mkdir()
    (src / "data" / "big.txt").write_text("x")
    (src / "w.bin").write_text("x")
    (src / "check.py").write_text(
        "import os\nfrom paddock import Run\n"
        "assert not os.path.exists('data') and not os.path.exists('w.bin'), os.listdir('.')\n"
        "Run.get_context().log('accuracy', 0.9)\n")
    cfg = ScriptRunConfig(source_directory=str(src), script="check.py", compute_target=cluster,
                          distributed_job_config=PyTorchConfiguration(node_count=1))
    run = Experiment(ws, "sdk-tests").submit(cfg)
    run.wait_for_completion(timeout_seconds=90)
    assert run.get_metrics("accuracy") == {"accuracy": 0.9}
    assert run.get_details()["compute"] == "cpu-cluster"


def test_failing_script_raises(ws, src, capsys):
    run = Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="fail.py"))
    with pytest.raises(ActivityFailedException) as ei:
        run.wait_for_completion(show_output=True, timeout_seconds=90)
    assert run.get_status() == "Failed"
    assert "Failed" in ei.value.message
    assert "about to fail" in capsys.readouterr().out
    d = run.wait_for_completion(raise_on_error=False)
    assert d["exit_code"] == 3


def test_command_and_environment(ws, src):
    req = src / "requirements.txt"
    req.write_text("")
    env = Environment("myenv")
    env.python.interpreter_path = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    env.environment_variables = {"GREETING": "hi"}
    cfg = ScriptRunConfig(source_directory=str(src), command=["python3", "-c",
                          "import os; from paddock import Run; "
                          "Run.get_context().log('g', float(os.environ['GREETING'] == 'hi'))"],
                          environment=env)
    run = Experiment(ws, "sdk-tests").submit(cfg)
    run.wait_for_completion(timeout_seconds=90)
    assert run.get_metrics() == {"g": 1.0}
    req.write_text("six\n")
    assert Environment.from_pip_requirements("e", str(req))._to_server() == {"requirements": "six\n"}


def test_submit_errors_carry_server_message(ws, src):
    with pytest.raises(ExperimentExecutionException) as ei:
        Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                           compute_target="no-such-target"))
    assert "no-such-target" in ei.value.message


def test_cancel(ws, src):
    (src / "sleep.py").write_text("import time\ntime.sleep(60)\n")
    run = Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="sleep.py"))
    run.cancel()
    d = run.wait_for_completion(raise_on_error=False, timeout_seconds=60)
    assert d["status"] == "Canceled"


def test_symlink_escaping_is_rejected(ws, src):
    os.symlink("/etc/passwd", str(src / "evil"))
    from paddock.exceptions import SnapshotException
    with pytest.raises(SnapshotException, match="absolute"):
        Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="train.py"))


def test_context_outside_run_is_noop(monkeypatch):
    for k in ("PADDOCK_RUN_ID", "PADDOCK_RUN_TOKEN", "PADDOCK_API_URL"):
        monkeypatch.delenv(k, raising=False)
    run = Run.get_context()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.log("accuracy", 0.9)
    assert run.id.startswith("OfflineRun_")


def test_add_identity_reaches_the_next_run(ws, src):
    """The seed's add_identity on an existing cluster: the runs submitted after it read the identity's credential
    from their endpoint; the one before had none."""
    from paddock.compute import AmlCompute, ComputeTarget
    ws._client.call("POST", ws._path("/identities"), body={"name": "sdk-runs-key", "secrets": {"TOKEN": "sdk-s3cret"}})
    c = ComputeTarget.create(ws, "idrun-cluster", AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", max_nodes=1, idle_seconds_before_scaledown=30))
    c.wait_for_completion()
    (src / "ident.py").write_text(
        "import os\nfrom paddock import Run\nfrom paddock.run import get_identity_credential\n"
        "run = Run.get_context()\n"
        "if 'PADDOCK_IDENTITY_ENDPOINT' not in os.environ:\n"
        "    run.log('has_identity', 0)\n"
        "else:\n"
        "    cred = get_identity_credential()\n"
        "    run.log('has_identity', 1)\n"
        "    run.log('secret_ok', float(cred['secrets']['TOKEN'] == 'sdk-s3cret' and cred['identity'] == 'sdk-runs-key'))\n")

    def submit():
        run = Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="ident.py",
                                                                 compute_target=c))
        run.wait_for_completion(timeout_seconds=120)
        return run.get_metrics()

    try:
        assert submit() == {"has_identity": 0.0}
        c.add_identity(identity_type="UserAssigned", identity_id=["sdk-runs-key"])
        assert submit() == {"has_identity": 1.0, "secret_ok": 1.0}
    finally:
        c.delete(force=True)
        c.wait_for_completion(is_delete_operation=True, timeout_in_minutes=1)
