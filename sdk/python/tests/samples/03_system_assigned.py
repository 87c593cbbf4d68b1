# Seed: managed identity, system-assigned, in the provisioning configuration. Changed: the imports.
from paddock.compute import AmlCompute

# configure cluster with a system-assigned managed identity
compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                        max_nodes=5,
                                                        identity_type="SystemAssigned",
                                                        )
