# Seed: the run configuration for HDInsight (the snippet the article includes from
# how-to-set-up-training-targets). Changed: the imports. hdi_compute is an existing target (Paddock
# has no HDInsight; the test gives the built-in local target). Paddock runs scripts with python3,
# so framework "pyspark" gives a PaddockCompatibilityWarning.
from paddock.runconfig import RunConfiguration
from paddock.conda_dependencies import CondaDependencies

run_hdi = RunConfiguration(framework="pyspark")

run_hdi.target = hdi_compute.name

cd = CondaDependencies()
cd.add_conda_package('numpy')
run_hdi.environment.python.conda_dependencies = cd
print(run_hdi)
