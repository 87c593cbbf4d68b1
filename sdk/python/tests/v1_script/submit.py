# A typical Azure ML SDK v1 driver script. Changed from its azureml-core form: the imports only.
from paddock import Workspace, Experiment, ScriptRunConfig, Environment
from paddock.compute import ComputeTarget, AmlCompute
from paddock.compute_target import ComputeTargetException

ws = Workspace.from_config()

cluster_name = "train-cluster"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2,
                                                   idle_seconds_before_scaledown=30)
    compute_target = ComputeTarget.create(ws, cluster_name, config)
    compute_target.wait_for_completion(show_output=True)

env = Environment.from_conda_specification(name="train-env", file_path="environment.yml")
src = ScriptRunConfig(source_directory="src", script="train.py", arguments=["--epochs", 3],
                      compute_target=compute_target, environment=env)

experiment = Experiment(workspace=ws, name="v1-training")
run = experiment.submit(src, tags={"team": "vision"})
run.wait_for_completion(show_output=True)

metrics = run.get_metrics()
for name in sorted(metrics):
    print("metric", name, metrics[name])
print("tags", sorted(run.get_tags().items()))
print("files", run.get_file_names())
run.download_files(output_directory="downloaded")
