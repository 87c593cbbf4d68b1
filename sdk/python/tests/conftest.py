"""Session fixture: a real `paddock up` on 127.0.0.1:0 in a temp dir (parallel-safe)."""
import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(SDK))
sys.path.insert(0, SDK)


def _kill_pidfile(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# Runs' OS users (made when an agent is root) get a prefix of this test
# session, inherited by every server the tests start, so they can be told
# apart and removed at the end.
RUN_USER_PREFIX = "pdks%d-" % os.getpid()
os.environ["PADDOCK_RUN_USER_PREFIX"] = RUN_USER_PREFIX


@pytest.fixture(scope="session")
def server():
    if shutil.which("go") is None and not os.environ.get("PADDOCK_BIN"):
        pytest.skip("go is not installed and PADDOCK_BIN is not set")
    tmp = tempfile.mkdtemp(prefix="paddock-sdk-test-")
    binary = os.environ.get("PADDOCK_BIN")
    if not binary:
        binary = os.path.join(tmp, "paddock")
        subprocess.run(["go", "build", "-o", binary, "./cmd/paddock"], cwd=REPO, check=True, timeout=300)
    data = os.path.join(tmp, "data")
    cfg = os.path.join(tmp, "config")
    env = dict(os.environ, PADDOCK_CONFIG=cfg, HOME=tmp)
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen([binary, "up", "--listen", "127.0.0.1:0", "--data-dir", data], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(cfg):
            try:
                with open(cfg) as f:
                    url = json.load(f)["server"]
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001 - not serving yet
                pass
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("paddock up did not come up; log: %s" % open(os.path.join(tmp, "server.log")).read()[-2000:])
    if proc.poll() is not None:
        pytest.fail("paddock up exited %s: %s" % (proc.returncode, open(os.path.join(tmp, "server.log")).read()[-2000:]))
    old = os.environ.get("PADDOCK_CONFIG")
    os.environ["PADDOCK_CONFIG"] = cfg
    for k in ("PADDOCK_SERVER", "PADDOCK_TOKEN", "PADDOCK_WORKSPACE", "PADDOCK_RUN_ID", "PADDOCK_RUN_TOKEN"):
        os.environ.pop(k, None)
    yield {"url": url, "config": cfg, "tmp": tmp, "data": data, "binary": binary}
    if old is None:
        os.environ.pop("PADDOCK_CONFIG", None)
    else:
        os.environ["PADDOCK_CONFIG"] = old
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    for pf in [os.path.join(data, "local-agent", "agent.pid")] + glob.glob(os.path.join(data, "nodes", "*", "agent.pid")):
        _kill_pidfile(pf)
    shutil.rmtree(tmp, ignore_errors=True)
    _remove_run_users(RUN_USER_PREFIX)


def _remove_run_users(prefix):
    """Removes the OS users the session's agents made for runs (root only)."""
    if os.geteuid() != 0:
        return
    with open("/etc/passwd") as f:
        names = [line.split(":", 1)[0] for line in f if line.startswith(prefix)]
    for name in names:
        subprocess.run(["userdel", "-r", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


DATABRICKS_TOKEN = "dapi-sdk-test-0123456789"
DATABRICKS_CLUSTER = "0101-120000-fake0001"  # databrickstest.ClusterID


@pytest.fixture
def databricks(server, tmp_path):
    """A FAKE Databricks workspace (internal/databricks/databrickstest, built with `go build`): it enforces the
    request shapes of the vendor's API reference and runs spark_python_tasks with the local python3. The test
    fails on any request it did not recognise."""
    binary = os.path.join(server["tmp"], "fakeworkspace")
    if not os.path.exists(binary):
        subprocess.run(["go", "build", "-o", binary, "./internal/databricks/databrickstest/fakeworkspace"], cwd=REPO,
                       check=True, timeout=300)
    root = tmp_path / "dbfs"
    root.mkdir()
    proc = subprocess.Popen([binary, "-token", DATABRICKS_TOKEN, "-root", str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
    yield {"url": url, "token": DATABRICKS_TOKEN, "cluster_id": DATABRICKS_CLUSTER}
    try:
        _, err = proc.communicate(input="", timeout=15)  # its stdin closes: it stops
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert "REFUSED" not in err, err


@pytest.fixture(scope="session")
def ws(server):
    from paddock import Workspace
    return Workspace.from_config()


@pytest.fixture(scope="session")
def cluster(ws):
    """The seed's create-or-reuse cluster sample."""
    from paddock.compute import AmlCompute, ComputeTarget
    from paddock.compute_target import ComputeTargetException
    cpu_cluster_name = "cpu-cluster"
    try:
        cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
        print("Found existing cluster, use it.")
    except ComputeTargetException:
        compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4,
                                                               idle_seconds_before_scaledown=5)
        cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
    cpu_cluster.wait_for_completion(show_output=True)
    return cpu_cluster


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "train.py").write_text(
        "import os, sys\n"
        "from paddock import Run\n"
        "run = Run.get_context()\n"
        "run.log('accuracy', 0.9)\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.txt', 'w').write('weights')\n"
        "print('hello from train', *sys.argv[1:])\n")
    (d / "fail.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    return d


@contextlib.contextmanager
def start_sshd(tmp_path, user, password=None):
    """A throwaway sshd on a free loopback port letting `user` in with a key (and with `password` when
    given); needs root. Yields {"port", "key", "user", "password"}."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        if subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], capture_output=True).returncode != 0:
            pytest.skip("cannot create user %s" % user)
    if password:
        subprocess.run(["chpasswd"], input=("%s:%s\n" % (user, password)).encode(), check=True)
    else:
        # a new account is locked ("!"), which sshd without PAM refuses even for keys: '*' = no password, unlocked
        subprocess.run(["usermod", "-p", "*", user], capture_output=True)
    home = pwd.getpwnam(user).pw_dir
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hostkey = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    sshdir = os.path.join(home, ".ssh")
    os.makedirs(sshdir, exist_ok=True)
    with open(os.path.join(sshdir, "authorized_keys"), "a") as f:
        f.write((tmp_path / "id.pub").read_text())
    u = pwd.getpwnam(user)
    for p in (sshdir, os.path.join(sshdir, "authorized_keys")):
        os.chown(p, u.pw_uid, u.pw_gid)
    os.chmod(sshdir, 0o700)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = tmp_path / "sshd_config"
    cfg.write_text("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nUsePAM no\n"
                   "PasswordAuthentication %s\nPubkeyAuthentication yes\nStrictModes no\n"
                   % (port, hostkey, tmp_path / "sshd.pid", "yes" if password else "no"))
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "sshd.log", "wb"))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.skip("sshd did not start: %s" % (tmp_path / "sshd.log").read_text()[-500:])
                time.sleep(0.1)
        yield {"port": port, "key": str(key), "user": user, "password": password}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _can_run_sshd():
    return (os.path.exists("/usr/sbin/sshd") and hasattr(os, "geteuid") and os.geteuid() == 0
            and shutil.which("ssh-keygen") is not None and shutil.which("chpasswd") is not None)


@pytest.fixture
def sshd_password(tmp_path):
    """An sshd that lets the user paddock-sdk-pw in with a random password."""
    if not _can_run_sshd():
        pytest.skip("needs root, /usr/sbin/sshd, ssh-keygen and chpasswd")
    user = "paddock-sdk-pw"
    try:
        with start_sshd(tmp_path, user, password="Pw-" + secrets.token_hex(8)) as s:
            yield s
    finally:
        subprocess.run(["userdel", "-r", "-f", user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)


@pytest.fixture
def dev_spark():
    """The Spark standalone cluster scripts/dev-spark.sh started (scripts/test.sh starts it): its env file."""
    path = os.path.join(os.environ.get("PADDOCK_SPARK_DIR", "/var/tmp/paddock-spark"), "env")
    if not os.path.exists(path):
        pytest.skip("no Spark cluster: as root, `bash scripts/test.sh` starts one "
                    "(or `bash scripts/dev-spark.sh start`)")
    with open(path) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


@pytest.fixture
def dev_slurm():
    """The Slurm cluster scripts/dev-slurm.sh started (scripts/test.sh starts it): its SLURM_CONF."""
    conf = os.environ.get("SLURM_CONF") or "/tmp/paddock-slurm/etc/slurm.conf"
    ping = subprocess.run(["scontrol", "ping"], env=dict(os.environ, SLURM_CONF=conf), capture_output=True,
                          text=True) if shutil.which("scontrol") else None
    if ping is None or "UP" not in ping.stdout:
        pytest.skip("no Slurm cluster: as root, `bash scripts/test.sh` starts one "
                    "(or `bash scripts/dev-slurm.sh start`)")
    return conf
