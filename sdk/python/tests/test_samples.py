"""The seed's 14 code samples, kept under samples/ as files that differ from the originals only in their
imports (and, where the original holds Azure names, in addresses of the test's own services), each run as
a script against the session's server: each ends as it would on Azure, or with a ComputeTargetException
naming what Paddock does not offer."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import SDK

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, "samples")

# What the article defines before a sample (ws always): the names a sample uses without making them.
RUNNER = r'''
import runpy, sys
from paddock import Workspace
from paddock.compute import ComputeTarget
ws = Workspace.from_config()
g = {"ws": ws}
for name in sys.argv[2:]:
    if name == "cpu_cluster":
        g[name] = ComputeTarget(workspace=ws, name="cpu-cluster")
    elif name == "hdi_compute":
        g[name] = ComputeTarget(workspace=ws, name="local")
    elif name == "compute_target_name":
        g[name] = "attach-dsvm"
runpy.run_path(sys.argv[1], init_globals=g, run_name="__main__")
'''

IDENTITY = "sample-reader"


def run_sample(server, tmp_path, name, *context, subst=None, env=None):
    """Runs samples/<name> (after the test's substitutions) as a script; returns (exit code, output)."""
    with open(os.path.join(SAMPLES, name)) as f:
        text = f.read()
    for old, new in (subst or {}).items():
        assert old in text, "sample %s has no %r to replace" % (name, old)
        text = text.replace(old, new)
    script = tmp_path / name
    script.write_text(text)
    runner = tmp_path / "run_sample.py"
    runner.write_text(RUNNER)
    e = dict(os.environ, PYTHONPATH=SDK, PADDOCK_CONFIG=server["config"], PYTHONWARNINGS="always")
    e.update(env or {})
    p = subprocess.run([sys.executable, str(runner), str(script)] + list(context), cwd=str(tmp_path), env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, text=True)
    return p.returncode, p.stdout


def detach_and_wait(ws, target):
    """Detaches an attached target and waits until it is gone, so that the agent Paddock installed over SSH is
    stopped before the test's sshd and user go."""
    from paddock.compute import ComputeTarget
    target.detach()
    deadline = time.monotonic() + 60
    while target.name in [t.name for t in ComputeTarget.list(ws)]:
        assert time.monotonic() < deadline, "%s was not detached within 60 s" % target.name
        time.sleep(0.2)


def ok(result):
    code, out = result
    assert code == 0, out
    assert "Traceback" not in out, out
    return out


def ends_with(result, exc, message):
    code, out = result
    assert code != 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(exc), out
    assert message in out, out
    return out


@pytest.fixture(scope="module")
def identity(ws):
    ws._client.call("POST", ws._path("/identities"), body={"name": IDENTITY, "secrets": {"KEY": "value"}})
    return IDENTITY


def test_01_cpu_cluster(server, ws, tmp_path):
    out = ok(run_sample(server, tmp_path, "01_cpu_cluster.py"))
    assert 'Provisioning operation finished, operation "Succeeded"' in out
    out = ok(run_sample(server, tmp_path, "01_cpu_cluster.py"))
    assert "Found existing cluster, use it." in out


@pytest.mark.parametrize("name", ["02_low_priority.py", "03_system_assigned.py"])
def test_02_03_configurations(server, tmp_path, name):
    out = ok(run_sample(server, tmp_path, name))
    assert "Warning" not in out, out


def test_04_to_06_identities(server, ws, tmp_path, identity):
    from paddock.compute import AmlCompute, ComputeTargetException
    subst = {"<user_assigned_identity>": identity}
    try:  # the sample creates cpu-cluster, as in a fresh workspace; other tests may have made one
        old = AmlCompute(ws, "cpu-cluster")
        old.delete()
        old.wait_for_completion(is_delete_operation=True, timeout_in_minutes=3)
    except ComputeTargetException:
        pass
    out = ok(run_sample(server, tmp_path, "04_user_assigned.py", subst=subst))
    assert "Warning" not in out, out
    c = AmlCompute(ws, "cpu-cluster")
    c.wait_for_completion()
    assert c.identity_type == "UserAssigned" and [i.rsplit("/", 1)[-1] for i in c.identity_id] == [identity]
    ok(run_sample(server, tmp_path, "05_add_system_identity.py", "cpu_cluster"))
    c.refresh_state()
    assert c.identity_type == "SystemAssigned" and c.principal_id
    ok(run_sample(server, tmp_path, "06_add_user_identity.py", "cpu_cluster", subst=subst))
    c.refresh_state()
    assert c.identity_type == "UserAssigned" and identity in c.identity_id[0]


def test_07_compute_instance(server, ws, tmp_path):
    from paddock.compute import ComputeInstance
    out = ok(run_sample(server, tmp_path, "07_compute_instance.py"))
    assert "Provisioning operation finished" in out or "Found existing instance, use it." in out
    inst = ComputeInstance(ws, "ci{}".format(ws._workspace_id)[:10])
    assert inst.get_status().state == "Running"


def test_08_remote_vm(server, ws, tmp_path, sshd_password):
    from paddock.compute import ComputeTarget
    out = ok(run_sample(server, tmp_path, "08_remote_vm.py", subst={
        "ssh_port=22": "ssh_port=%d" % sshd_password["port"], "<username>": sshd_password["user"],
        "<password>": sshd_password["password"]}))
    assert 'operation "Succeeded"' in out and sshd_password["password"] not in out
    t = ComputeTarget(ws, "attach-dsvm")
    try:
        assert t.get_status().reachable is True
    finally:
        detach_and_wait(ws, t)


def test_09_hdinsight(server, ws, tmp_path, sshd_password, dev_spark):
    out = ok(run_sample(server, tmp_path, "09_hdinsight.py", subst={
        "ssh_port=22": "ssh_port=%d" % sshd_password["port"], "<ssh-username>": sshd_password["user"],
        "<ssh-pwd>": sshd_password["password"]}))
    assert "Caught" not in out and "PaddockCompatibilityWarning" not in out and sshd_password["password"] not in out
    from paddock import Experiment, ScriptRunConfig
    from paddock.compute import ComputeTarget
    t = ComputeTarget(ws, "myhdi")
    try:
        st = t.get_status()
        assert t.paddock_type == "spark" and st.reachable is True and st.spark_version.startswith("3.")
        # No master given: spark-submit uses the head node's spark-defaults.conf, and workers are not read.
        assert st.workers == 0 and st.cores >= 1
        # A run on it: ScriptRunConfig's python3 wc.py is spark-submitted as the PySpark application wc.py.
        src = tmp_path / "spark-src"
        src.mkdir()
        (src / "input.txt").write_text("to be or not to be\n")
        (src / "wc.py").write_text(
            "import os\nfrom pyspark.sql import SparkSession\nfrom paddock import Run\n"
            "spark = SparkSession.builder.appName('sdk-wc').getOrCreate()\n"
            "n = spark.sparkContext.textFile(os.path.abspath('input.txt')).flatMap(str.split).distinct().count()\n"
            "Run.get_context().log('distinct', n)\nspark.stop()\n")
        shutil.copytree(os.path.join(SDK, "paddock"), str(src / "paddock"))
        run = Experiment(ws, "hdi").submit(ScriptRunConfig(source_directory=str(src), script="wc.py",
                                                           compute_target="myhdi"))
        run.wait_for_completion(timeout_seconds=300)
        assert run.get_status() == "Completed" and run.get_metrics() == {"distinct": 4.0}
    finally:
        detach_and_wait(ws, t)


def test_10_batch(server, tmp_path):
    out = ends_with(run_sample(server, tmp_path, "10_batch.py"), "paddock.exceptions.ComputeTargetException",
                    "Paddock does not offer Azure Batch accounts")
    assert "Attaching Batch compute..." in out


def test_10_batch_attaches_slurm(server, ws, tmp_path, sshd_password, dev_slurm):
    """With a real Slurm login node's address and login added next to the Azure account's names, the sample
    attaches a slurm target with one warning saying so; a run then completes there as a Slurm job."""
    out = ok(run_sample(server, tmp_path, "10_batch.py", subst={
        "account_name=batch_account_name)": "account_name=batch_account_name, address='127.0.0.1', ssh_port=%d, "
        "username=%r, password=%r, slurm_conf=%r)" % (sshd_password["port"], sshd_password["user"],
                                                      sshd_password["password"], dev_slurm)}))
    assert "Provisioning state:Succeeded" in out and out.count("PaddockCompatibilityWarning") == 1, out
    assert "Paddock's batch target is a Slurm cluster" in out and sshd_password["password"] not in out
    from paddock import Experiment, ScriptRunConfig
    from paddock.compute import ComputeTarget
    t = ComputeTarget(ws, "mybatchcompute")
    try:
        assert t.paddock_type == "slurm"
        src = tmp_path / "batch-src"
        src.mkdir()
        (src / "job.py").write_text("import os\nprint('slurm job', os.environ.get('SLURM_JOB_ID'))\n")
        run = Experiment(ws, "batch").submit(ScriptRunConfig(source_directory=str(src), script="job.py",
                                                             compute_target="mybatchcompute"))
        run.wait_for_completion(timeout_seconds=300)
        assert run.get_status() == "Completed"
    finally:
        detach_and_wait(ws, t)


def test_11_databricks(server, ws, tmp_path, databricks):
    """The sample attaches a Paddock databricks target: the workspace's address and cluster come from
    PADDOCK_DATABRICKS_URL and PADDOCK_DATABRICKS_CLUSTER_ID (a FAKE workspace here: no real one is reachable),
    where the seed names an Azure workspace and resource group. A script then runs there to its end."""
    from paddock import Experiment, ScriptRunConfig
    from paddock.compute import ComputeTarget, DatabricksCompute
    env = {"AML_DATABRICKS_COMPUTE_NAME": "databricks1", "AML_DATABRICKS_WORKSPACE": "dbw",
           "AML_DATABRICKS_RESOURCE_GROUP": "rg", "AML_DATABRICKS_ACCESS_TOKEN": databricks["token"],
           "PADDOCK_DATABRICKS_URL": databricks["url"], "PADDOCK_DATABRICKS_CLUSTER_ID": databricks["cluster_id"]}
    out = ok(run_sample(server, tmp_path, "11_databricks.py", env=env))
    assert "compute not found" in out and "Succeeded" in out
    target = ComputeTarget(workspace=ws, name="databricks1")
    try:
        assert isinstance(target, DatabricksCompute) and "access_token" not in target.properties
        st = target.get_status()
        assert st.reachable is True and st.cluster_state == "RUNNING"
        src = tmp_path / "src"
        src.mkdir()
        (src / "train.py").write_text("import os\nfor i in range(3):\n    print('step', i)\n"
                                      "os.makedirs('outputs', exist_ok=True)\n"
                                      "open('outputs/model.txt', 'w').write('trained')\n")
        run = Experiment(ws, "sdk-databricks").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                                      compute_target=target))
        run.wait_for_completion(show_output=False)
        assert run.get_status() == "Completed"
        assert "outputs/model.txt" in run.get_file_names()
    finally:
        detach_and_wait(ws, target)


def test_12_adla(server, tmp_path):
    env = {"AML_ADLA_COMPUTE_NAME": "adla1"}
    ends_with(run_sample(server, tmp_path, "12_adla.py", env=env), "paddock.exceptions.ComputeTargetException",
              "Azure Data Lake Analytics targets: the service was retired")


def test_13_run_dsvm(server, tmp_path):
    out = ok(run_sample(server, tmp_path, "13_run_dsvm.py", "compute_target_name"))
    assert "Base Docker image is: docker.io/library/python:3.11-slim" in out
    assert '"target": "attach-dsvm"' in out and "scikit-learn" in out


def test_14_run_hdi(server, tmp_path):
    out = ok(run_sample(server, tmp_path, "14_run_hdi.py", "hdi_compute"))
    assert "PaddockCompatibilityWarning: RunConfiguration: framework 'pyspark' is not offered" in out
    assert out.count("PaddockCompatibilityWarning") == 1
    assert 'numpy' in out and '"target": "local"' in out
