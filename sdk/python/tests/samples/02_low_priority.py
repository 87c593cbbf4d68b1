# Seed: "Lower your compute cluster cost". Changed: the imports.
from paddock.compute import AmlCompute

compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                            vm_priority='lowpriority',
                                                            max_nodes=4)
