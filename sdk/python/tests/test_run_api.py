"""The rest of the v1 run API against the session's server: interactive runs, tables, JSON values,
tags and files from outside a run, active runs, environments kept in the workspace, run configurations
on disk, several processes per node, and what Paddock refuses rather than ignores."""
import json
import re
import shutil
import warnings

import pytest

from paddock import (CondaDependencies, Environment, Experiment, PaddockCompatibilityWarning, PyTorchConfiguration,
                     Run, RunConfiguration, ScriptRunConfig)
from paddock.exceptions import ActivityFailedException, PaddockException, UserErrorException


def test_interactive_run_logs_and_completes(ws, tmp_path):
    exp = Experiment(ws, "interactive")
    run = exp.start_logging(tags={"kind": "notebook"})
    assert run.get_status() == "Running"
    run.log("lr", 0.01)
    run.log("note", "first try")
    run.log_list("losses", [0.5, 0.4, "n/a"])
    run.log_table("roc", {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]})
    run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix",
                                    "data": {"class_labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}})
    run.tag("reviewed")
    run.set_tags({"epochs": 3})
    (tmp_path / "cfg.json").write_text('{"a": 1}')
    run.upload_file("config/cfg.json", str(tmp_path / "cfg.json"))
    assert any(r.id == run.id for r in exp.get_runs(tags={"kind": "notebook"}))
    run.complete()
    assert run.get_status() == "Completed"
    m = run.get_metrics()
    assert m["lr"] == 0.01 and m["note"] == "first try" and m["losses"] == [0.5, 0.4, "n/a"]
    assert m["roc"] == {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}
    assert m["cm"]["data"]["matrix"] == [[3, 1], [0, 4]]
    assert run.get_tags() == {"kind": "notebook", "reviewed": "", "epochs": "3"}
    assert "config/cfg.json" in run.get_file_names() and "logs/run.log" in run.get_details()["logFiles"]
    assert json.loads(open(run.download_file("config/cfg.json", str(tmp_path / "back.json"))).read()) == {"a": 1}


def test_interactive_run_in_with_block_fails_on_exception(ws):
    with pytest.raises(ZeroDivisionError):
        with Experiment(ws, "interactive").start_logging() as run:
            run.log("x", 1)
            1 / 0
    d = run.wait_for_completion(raise_on_error=False)
    assert d["status"] == "Failed" and "ZeroDivisionError" in (d.get("error") or "")


def test_bad_metric_values_name_the_metric(ws):
    run = Experiment(ws, "interactive").start_logging()
    try:
        with pytest.raises(PaddockException, match="metric x: value nan is not finite"):
            run.log("x", float("nan"))
        with pytest.raises(PaddockException, match="log_table t: the columns must be lists of one length"):
            run.log_table("t", {"a": [1, 2], "b": [1]})
        with pytest.raises(PaddockException, match="column \"c\" holds a list"):
            run.log_row("r", c=[1, 2])
    finally:
        run.complete()


def test_run_fails_from_inside_and_active_runs(ws, cluster, src):
    (src / "mark.py").write_text("import time\nfrom paddock import Run\nrun = Run.get_context()\n"
                                 "run.tag('phase', 'eval')\nrun.fail(error_details='bad data')\ntime.sleep(3)\n")
    run = Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="mark.py",
                                                             compute_target=cluster), tags={"by": "test"})
    assert run.tags.get("by") == "test"
    assert any(r.id == run.id for r in cluster.get_active_runs())
    with pytest.raises(ActivityFailedException, match="bad data"):
        run.wait_for_completion(timeout_seconds=120)
    assert run.get_tags() == {"by": "test", "phase": "eval"}
    assert all(r.id != run.id for r in cluster.get_active_runs())


def test_environment_register_get_clone(ws, tmp_path):
    cd = CondaDependencies.create(pip_packages=["requests==2.31.0"], python_version="3.11")
    env = Environment("reg-env")
    env.python.conda_dependencies = cd
    env.environment_variables = {"MODE": "fast"}
    r1 = env.register(ws)
    assert r1.version == "1" and env.register(ws).version == "1"  # the same again: that version
    other = env.clone("reg-env")
    other.python.conda_dependencies.add_pip_package("numpy")
    assert other.register(ws).version == "2" and list(cd.pip_packages) == ["requests==2.31.0"]
    got = Environment.get(ws, "reg-env", version="1")
    assert got.python.conda_dependencies == cd and got.environment_variables == {"MODE": "fast"}
    assert list(Environment.get(ws, "REG-ENV").python.conda_dependencies.pip_packages) == ["requests==2.31.0", "numpy"]
    assert "reg-env" in Environment.list(ws)
    with pytest.raises(PaddockException) as ei:
        Environment.get(ws, "no-such-env")
    assert ei.value.status == 404


def test_conda_specification_and_docker_choices(tmp_path):
    (tmp_path / "env.yml").write_text("name: e\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n"
                                      "  - numpy\n  - pip:\n    - torch==2.1\n")
    env = Environment.from_conda_specification("e", str(tmp_path / "env.yml"))
    cd = env.python.conda_dependencies
    assert cd.get_python_version() == "3.10" and list(cd.conda_packages) == ["numpy"]
    assert list(cd.pip_packages) == ["torch==2.1"] and "conda" in env._to_server()
    df = Environment.from_dockerfile("d", "FROM python:3.11\n")
    with pytest.raises(UserErrorException, match="does not build images"):
        df._to_server()
    img = env.clone("img")
    img.docker.enabled = True
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert img._to_server() == {"image": "docker.io/library/python:3.11-slim"}
    assert any(issubclass(x.category, PaddockCompatibilityWarning) and "not installed into it" in str(x.message)
               for x in w)
    with pytest.raises(UserErrorException, match="Paddock does not use"):
        CondaDependencies._from_text("name: e\nvariables:\n  A: 1\n")


def test_run_configuration_save_load(tmp_path):
    rc = RunConfiguration(script="train.py", arguments=["--x", 1])
    rc.target = "cpu-cluster"
    rc.node_count = 2
    rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["numpy"])
    rc.environment.environment_variables = {"A": "1"}
    path = rc.save(str(tmp_path))
    assert path.endswith(".azureml/runconfig.runconfig")
    back = RunConfiguration.load(str(tmp_path))
    assert back.script == "train.py" and back.arguments == ["--x", "1"] and back.target == "cpu-cluster"
    assert back.node_count == 2 and back.environment.environment_variables == {"A": "1"}
    assert back.environment.python.conda_dependencies == rc.environment.python.conda_dependencies


def test_pytorch_processes_per_node(ws, src):
    (src / "rank.py").write_text("import os\nprint('rank', os.environ['RANK'], os.environ['LOCAL_RANK'], "
                                 "os.environ['WORLD_SIZE'])\n")
    cfg = ScriptRunConfig(source_directory=str(src), script="rank.py", compute_target="local",
                          distributed_job_config=PyTorchConfiguration(process_count=2, node_count=1))
    run = Experiment(ws, "sdk-tests").submit(cfg)
    run.wait_for_completion(timeout_seconds=120)
    text = "\n".join(line.get("text", "") for line in run.get_logs())
    assert "rank 0 0 2" in text and "rank 1 1 2" in text, text


@pytest.mark.skipif(any(shutil.which(t) for t in ("micromamba", "mamba", "conda")),
                    reason="a conda tool is on PATH: conda packages would be installed")
def test_conda_only_package_fails_the_run_naming_it(ws, src):
    env = Environment("conda-only")
    env.python.conda_dependencies = CondaDependencies.create(conda_packages=["scikit-learn"])
    run = Experiment(ws, "sdk-tests").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                             environment=env))
    with pytest.raises(ActivityFailedException, match="conda packages scikit-learn, which need micromamba"):
        run.wait_for_completion(timeout_seconds=120)


def test_offline_context_keeps_values():
    run = Run.get_context()
    run.log("a", 1)
    run.log_row("t", x=1)
    run.tag("k", "v")
    assert run.get_metrics() == {"a": 1.0, "t": {"x": 1}} and run.get_tags() == {"k": "v"}


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs OpenMPI's mpirun (bash scripts/deps.sh mpi)")
def test_mpi_configuration_two_nodes_two_processes(ws, cluster, src):
    from paddock import MpiConfiguration
    (src / "hello.py").write_text("import os\nprint('hello rank=%s size=%s node=%s' % (os.environ['OMPI_COMM_WORLD_RANK'], "
                                  "os.environ['OMPI_COMM_WORLD_SIZE'], os.environ['NODE_RANK']))\n")
    cfg = ScriptRunConfig(source_directory=str(src), script="hello.py", compute_target=cluster,
                          distributed_job_config=MpiConfiguration(process_count_per_node=2, node_count=2))
    run = Experiment(ws, "sdk-tests").submit(cfg)
    d = run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    logs = run.get_logs()
    assert d["status"] == "Completed", "\n".join("%s %s" % (x.get("rank"), x.get("text")) for x in logs)
    # (mpirun sometimes joins two lines of one remote node's ranks: OpenMPI's output forwarding, not ours)
    hello = sorted(re.findall(r"hello rank=\d+ size=\d+ node=\d+", "\n".join(x.get("text", "") for x in logs)))
    assert hello == ["hello rank=0 size=4 node=0", "hello rank=1 size=4 node=0", "hello rank=2 size=4 node=1",
                     "hello rank=3 size=4 node=1"], hello


def test_pytorch_two_nodes_two_processes_each(ws, cluster, src):
    (src / "rank.py").write_text("import os\nprint('rank=%s local=%s world=%s node=%s' % (os.environ['RANK'], "
                                 "os.environ['LOCAL_RANK'], os.environ['WORLD_SIZE'], os.environ['NODE_RANK']))\n")
    cfg = ScriptRunConfig(source_directory=str(src), script="rank.py", compute_target=cluster,
                          distributed_job_config=PyTorchConfiguration(process_count=4, node_count=2))
    run = Experiment(ws, "sdk-tests").submit(cfg)
    run.wait_for_completion(timeout_seconds=180)
    got = sorted(re.findall(r"rank=\d+ local=\d+ world=\d+ node=\d+", "\n".join(x.get("text", "") for x in run.get_logs())))
    assert got == ["rank=0 local=0 world=4 node=0", "rank=1 local=1 world=4 node=0", "rank=2 local=0 world=4 node=1",
                   "rank=3 local=1 world=4 node=1"], got
