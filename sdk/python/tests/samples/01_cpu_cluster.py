# Seed: the compute cluster, created or reused (the article includes it from MachineLearningNotebooks
# how-to-set-up-training-targets; written here from its calls). Changed: the imports.
from paddock.compute import ComputeTarget, AmlCompute
from paddock.compute_target import ComputeTargetException

cpu_cluster_name = "cpucluster"

try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print('Found existing cluster, use it.')
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                           max_nodes=4)
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)

cpu_cluster.wait_for_completion(show_output=True)
