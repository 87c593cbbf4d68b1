import subprocess
import sys
import warnings

import pytest

from paddock import PaddockCompatibilityWarning
from paddock.compute import (AdlaCompute, AmlCompute, BatchCompute, ComputeInstance, ComputeTarget, DatabricksCompute,
                             HDInsightCompute, RemoteCompute)
from paddock.compute_target import ComputeTargetException
from paddock import exceptions as pexc
import paddock.compute as pcompute


def test_exception_is_importable_from_three_places():
    assert pcompute.ComputeTargetException is ComputeTargetException is pexc.ComputeTargetException


def test_version_cli():
    import paddock
    out = subprocess.run([sys.executable, "-m", "paddock", "--version"], capture_output=True, text=True,
                         env={"PYTHONPATH": paddock.__path__[0].rsplit("/", 1)[0]}, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == paddock.__version__


def test_cluster_create_or_reuse(ws, cluster, capsys):
    assert isinstance(cluster, AmlCompute)
    assert cluster.provisioning_state == "Succeeded"
    again = ComputeTarget(workspace=ws, name="cpu-cluster")  # second time: found, read back from the server
    assert isinstance(again, AmlCompute) and again.vm_size == "STANDARD_D2_V2"
    s = again.scale_settings
    assert (s.minimum_node_count, s.maximum_node_count, s.idle_seconds_before_scaledown) == (0, 4, 5)
    assert again.created_by == "admin"
    # A new cluster with min_nodes 0 that has had no run: no node, none coming.
    st = again.get_status()
    assert st.allocation_state == "Steady" and st.provisioning_state == "Succeeded"
    assert (st.current_node_count, st.target_node_count) == (0, 0)
    assert st.serialize()["allocationState"] == "Steady"
    assert cluster.list_nodes() == []
    assert [t.vm_size for t in ComputeTarget.list(ws) if t.name == "cpu-cluster"] == ["STANDARD_D2_V2"]
    assert "cpu-cluster" in ws.compute_targets
    ser = cluster.serialize()
    assert ser["properties"]["computeType"] == "AmlCompute"


def test_missing_target_raises_with_server_message(ws):
    with pytest.raises(ComputeTargetException) as ei:
        ComputeTarget(workspace=ws, name="no-such-target")
    assert "not found" in ei.value.message and ei.value.code == "NotFound"
    with pytest.raises(ComputeTargetException):
        ComputeInstance(workspace=ws, name="no-such-ci")


def test_low_priority_and_update(ws):
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', vm_priority='lowpriority',
                                                           max_nodes=4)
    c = ComputeTarget.create(ws, "lowpri-cluster", compute_config)
    c.wait_for_completion(show_output=False)
    assert c.vm_priority == "lowpriority"
    c.update(max_nodes=2, idle_seconds_before_scaledown=60)
    c.wait_for_completion()
    assert c.scale_settings.maximum_node_count == 2
    with pytest.raises(ComputeTargetException) as ei:
        c.update(min_nodes=5)  # more than max_nodes: the server's message comes through
    assert ei.value.message and ei.value.status == 400
    with pytest.raises(ComputeTargetException):
        c.detach()
    c.delete()
    c.wait_for_completion(is_delete_operation=True, timeout_in_minutes=1)


def _identity(ws, name, secrets):
    """Makes a user-assigned identity as an admin would (`paddock identity create`)."""
    ws._client.call("POST", ws._path("/identities"), body={"name": name, "secrets": secrets})


def test_managed_identity(ws):
    _identity(ws, "u-ident", {"TOKEN": "t"})
    ident = '/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u-ident'
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', max_nodes=5,
                                                           identity_type="UserAssigned", identity_id=[ident])
    c = ComputeTarget.create(ws, "id-cluster", compute_config)
    c.wait_for_completion()
    assert c.identity_type == "UserAssigned" and c.identity_id == ["u-ident"]  # the resource id names it
    assert c.identity["user_assigned_identities"][0]["principal_id"]
    c.add_identity(identity_type="UserAssigned", identity_id=[ident])  # already there: nothing changes
    assert c.identity_id == ["u-ident"]
    # The seed's add_identity on an existing cluster: an identity of its own.
    c.add_identity(identity_type="SystemAssigned")
    assert c.identity_type == "SystemAssigned" and c.identity_id == [] and len(c.principal_id or "") == 36
    assert c.get_status().identity["principal_id"] == c.principal_id
    c.remove_identity()
    assert c.identity_type == "None" and c.identity == {}
    with pytest.raises(ComputeTargetException) as ei:
        c.add_identity(identity_type="UserAssigned", identity_id=["nobody-has-this"])
    assert ei.value.field == "identity_id" and "nobody-has-this" in ei.value.message
    c.update(identity_type="UserAssigned", identity_id=["u-ident"])  # update() takes them too
    c.wait_for_completion()
    c.remove_identity(identity_id=["u-ident"])  # the last one: no identity left
    assert c.identity_type == "None"
    sys_cfg = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', max_nodes=5,
                                                    identity_type="SystemAssigned")
    s = ComputeTarget.create(ws, "sysid-cluster", sys_cfg)
    s.wait_for_completion()
    assert s.identity_type == "SystemAssigned" and s.principal_id
    for t in (c, s):
        t.delete()
        t.wait_for_completion(is_delete_operation=True, timeout_in_minutes=1)


def test_invalid_config_carries_server_message(ws):
    cfg = AmlCompute.provisioning_configuration(vm_size="NO_SUCH_SIZE", max_nodes=1)
    with pytest.raises(ComputeTargetException) as ei:
        ComputeTarget.create(ws, "badsize", cfg)
    assert ei.value.field == "vm_size" and "NO_SUCH_SIZE" in ei.value.message


def test_vnet_parameters_warn_once(ws):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1, vnet_resourcegroup_name="rg",
                                              vnet_name="vnet", subnet_name="default")
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and "vnet_name" in msgs[0] and "subnet_name" in msgs[0]


def test_compute_instance_seed_sample(ws, capsys):
    compute_name = "ci{}".format(ws._workspace_id)[:10]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            instance = ComputeInstance(workspace=ws, name=compute_name)
            print('Found existing instance, use it.')
        except ComputeTargetException:
            compute_config = ComputeInstance.provisioning_configuration(
                vm_size='STANDARD_D3_V2',
                ssh_public_access=False,
                vnet_resourcegroup_name='<my-resource-group>',
                vnet_name='<my-vnet-name>',
                subnet_name='default',
            )
            instance = ComputeInstance.create(ws, compute_name, compute_config)
            instance.wait_for_completion(show_output=True)
    assert len(w) == 1
    assert "Provisioning operation finished" in capsys.readouterr().out
    assert isinstance(instance, ComputeInstance)
    assert instance.get_status().state == "Running"
    instance.stop(wait_for_completion=True, show_output=False)
    assert instance.get_status().state == "Stopped"
    instance.start(wait_for_completion=True, show_output=False)
    assert instance.get_status().state == "Running"


def test_supported_vmsizes(ws):
    sizes = AmlCompute.supported_vmsizes(ws)
    by = {s["name"]: s for s in sizes}
    assert by["STANDARD_D2_V2"]["vCPUs"] == 2 and by["STANDARD_D2_V2"]["memoryGB"] == 7
    assert by["STANDARD_NC6"]["gpus"] == 1


def test_databricks_wrong_token_stores_nothing(ws, databricks):
    """DatabricksCompute is offered (type databricks): a token the workspace (a fake) refuses fails the attach
    in one sentence naming the field, without the token, and leaves no target."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = DatabricksCompute.attach_configuration("rg", "w", None, "dapi-wrong-one", workspace_url=databricks["url"],
                                                     cluster_id=databricks["cluster_id"])
    assert "dapi-wrong-one" not in repr(cfg)
    with pytest.raises(ComputeTargetException) as ei:
        ComputeTarget.attach(workspace=ws, name="mydbx", attach_configuration=cfg)
    assert "refused the access token" in ei.value.message and "dapi-wrong-one" not in ei.value.message
    assert "mydbx" not in [t.name for t in ComputeTarget.list(ws)]


def test_hdinsight_attach_failure_stores_nothing(ws):
    """HDInsightCompute is offered (type spark): a head node that cannot be reached fails the attach, naming
    the cause, and leaves no target."""
    cfg = HDInsightCompute.attach_configuration("u", "127.0.0.1", 1, "p")
    with pytest.raises(ComputeTargetException) as ei:
        ComputeTarget.attach(workspace=ws, name="myhdi2", attach_configuration=cfg)
    assert "connection refused" in ei.value.message and "p" != ei.value.message
    assert "myhdi2" not in [t.name for t in ComputeTarget.list(ws)]


def test_batch_account_and_adla_are_not_offered():
    with pytest.raises(ComputeTargetException, match="Paddock does not offer Azure Batch accounts"):
        BatchCompute.attach_configuration(resource_group="rg", account_name="acct")
    with pytest.raises(ComputeTargetException, match="retired"):
        AdlaCompute.attach_configuration("rg", "acct")


def test_batch_leads_to_slurm_with_one_warning():
    """BatchCompute with a login node's address is a slurm target; one warning says so and names what it ignores."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cfg = BatchCompute.attach_configuration(resource_group="rg", account_name="acct", address="login.hpc",
                                                username="ml", password="pw", partition="debug")
    assert [str(x.message) for x in w] == [
        "BatchCompute.attach_configuration: Paddock's batch target is a Slurm cluster, so this attaches a slurm "
        "target through the login node login.hpc; it ignores account_name, resource_group (an Azure Batch "
        "account's names)."]
    assert w[0].category is PaddockCompatibilityWarning
    assert cfg._type == "slurm" and cfg._properties()["partition"] == "debug" and "pw" not in repr(cfg)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        BatchCompute.attach_configuration(address="login.hpc", username="ml", password="pw")
    assert len(w) == 1 and "ignores" not in str(w[0].message)


@pytest.mark.parametrize("cls", [RemoteCompute, HDInsightCompute])
def test_attach_signatures_follow_azure(cls):
    """username first, then address, as azureml-core; Azure-only keywords warn once, naming them all."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        extra = {"vm_name": "vm"} if cls is RemoteCompute else {"cluster_name": "c"}
        cfg = cls.attach_configuration("alice", "10.0.0.5", 2222, "pw", resource_id="/subscriptions/x",
                                       subscription_id="s", resource_group="rg", **extra)
    props = cfg._properties()
    assert props["username"] == "alice" and props["address"] == "10.0.0.5" and props["ssh_port"] == 2222
    assert props["password"] == "pw" and "pw" not in repr(cfg)
    msgs = [str(x.message) for x in w if issubclass(x.category, PaddockCompatibilityWarning)]
    assert len(msgs) == 1 and all(k in msgs[0] for k in ("resource_id", "subscription_id", "resource_group"))


def test_status_serializes_with_azure_keys(ws, cluster):
    d = cluster.get_status().serialize()
    for k in ("currentNodeCount", "targetNodeCount", "allocationState", "nodeStateCounts", "provisioningState",
              "scaleSettings", "vmSize", "vmPriority", "creationTime"):
        assert k in d, k
    assert d["scaleSettings"]["maxNodeCount"] == 4 and "idleNodeCount" in d["nodeStateCounts"]
    assert d["provisioningState"] == "Succeeded"


def test_batch_lookup_missing(ws):
    with pytest.raises(ComputeTargetException):
        BatchCompute(ws, "mybatchcompute")


def test_local_target(ws):
    local = ComputeTarget(workspace=ws, name="local")
    assert local.paddock_type == "local" and local.get_status().reachable is True
    with pytest.raises(ComputeTargetException) as ei:
        local.delete()
    assert ei.value.status == 400


def test_remote_requires_address():
    with pytest.raises(ComputeTargetException, match="address"), pytest.warns(PaddockCompatibilityWarning,
                                                                             match="ignores resource_id"):
        RemoteCompute.attach_configuration(resource_id="/subscriptions/x", username="u", password="p")


def test_compute_instance_delete_waits_when_asked(ws, capsys):
    inst = ComputeInstance.create(ws, "ci-delete", ComputeInstance.provisioning_configuration(vm_size="STANDARD_D3_V2"))
    inst.wait_for_completion()
    inst.stop()  # Azure's default: returns at once
    inst.delete(wait_for_completion=True, show_output=True)
    assert "Deleted ci-delete." in capsys.readouterr().out
    with pytest.raises(ComputeTargetException) as ei:
        ComputeInstance(ws, "ci-delete")
    assert ei.value.status == 404
