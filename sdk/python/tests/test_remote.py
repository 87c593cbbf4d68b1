"""Optional: attach a throwaway sshd as a RemoteCompute. Runs only as root with /usr/sbin/sshd."""
import os
import shutil

import pytest

from conftest import start_sshd
from paddock.compute import ComputeTarget, RemoteCompute

USER = "paddock-sdk-key"

pytestmark = pytest.mark.skipif(
    not (os.path.exists("/usr/sbin/sshd") and hasattr(os, "geteuid") and os.geteuid() == 0
         and shutil.which("ssh-keygen")),
    reason="needs root, /usr/sbin/sshd and ssh-keygen")


@pytest.fixture
def sshd(tmp_path):
    with start_sshd(tmp_path, USER) as s:
        yield s


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
