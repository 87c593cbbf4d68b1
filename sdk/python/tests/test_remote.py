"""Optional: attach a throwaway sshd as a RemoteCompute. Runs only as root with /usr/sbin/sshd."""
import os
import pwd
import shutil
import socket
import subprocess
import time

import pytest

from paddock.compute import ComputeTarget, RemoteCompute

USER = "paddock-sdk-key"

pytestmark = pytest.mark.skipif(
    not (os.path.exists("/usr/sbin/sshd") and hasattr(os, "geteuid") and os.geteuid() == 0
         and shutil.which("ssh-keygen")),
    reason="needs root, /usr/sbin/sshd and ssh-keygen")


@pytest.fixture
def sshd(tmp_path):
    try:
        pwd.getpwnam(USER)
    except KeyError:
        if subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], capture_output=True).returncode != 0:
            pytest.skip("cannot create user %s" % USER)
    # a new account is locked ("!"), which sshd without PAM refuses even for keys: '*' = no password, unlocked
    subprocess.run(["usermod", "-p", "*", USER], capture_output=True)
    home = pwd.getpwnam(USER).pw_dir
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hostkey = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    sshdir = os.path.join(home, ".ssh")
    os.makedirs(sshdir, exist_ok=True)
    pub = (tmp_path / "id.pub").read_text()
    with open(os.path.join(sshdir, "authorized_keys"), "a") as f:
        f.write(pub)
    u = pwd.getpwnam(USER)
    for p in (sshdir, os.path.join(sshdir, "authorized_keys")):
        os.chown(p, u.pw_uid, u.pw_gid)
    os.chmod(sshdir, 0o700)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = tmp_path / "sshd_config"
    cfg.write_text("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nUsePAM no\n"
                   "PasswordAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n"
                   % (port, hostkey, tmp_path / "sshd.pid"))
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "sshd.log", "wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip("sshd did not start: %s" % (tmp_path / "sshd.log").read_text()[-500:])
            time.sleep(0.1)
    yield {"port": port, "key": str(key)}
    proc.terminate()
    proc.wait(timeout=10)


def test_remote_attach_and_detach(ws, sshd, monkeypatch):
    # the README's form: a key file named from the home directory
    monkeypatch.setenv("HOME", os.path.dirname(sshd["key"]))
    attach_config = RemoteCompute.attach_configuration(address="127.0.0.1", ssh_port=sshd["port"], username=USER,
                                                       private_key_file="~/" + os.path.basename(sshd["key"]))
    compute = ComputeTarget.attach(ws, "attach-dsvm", attach_config)
    try:
        assert isinstance(compute, RemoteCompute)
        compute.wait_for_completion(show_output=True, timeout_in_minutes=1)
        st = compute.get_status()
        assert st.reachable is True and st.cores and st.cores > 0
    finally:
        compute.detach()
