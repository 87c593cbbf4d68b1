# Seed: the run configuration for the remote VM (the snippet the article includes from
# how-to-set-up-training-targets). Changed: the imports (the module path azureml.core.runconfig is
# paddock.runconfig). compute_target_name is the name the article gave the VM.
import paddock
import paddock.runconfig
from paddock.runconfig import RunConfiguration
from paddock.conda_dependencies import CondaDependencies

run_dsvm = RunConfiguration(framework = "python")

run_dsvm.target = compute_target_name 

run_dsvm.environment.docker.enabled = True

run_dsvm.environment.docker.base_image = paddock.runconfig.DEFAULT_CPU_IMAGE
print('Base Docker image is:', run_dsvm.environment.docker.base_image)

run_dsvm.environment.python.conda_dependencies = CondaDependencies.create(conda_packages=['scikit-learn'])
print(run_dsvm)
