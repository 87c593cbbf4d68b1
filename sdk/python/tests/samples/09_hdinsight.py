# Seed: attach an HDInsight cluster. Changed: the imports, and the cluster's Azure resource id for an
# address. Paddock does not offer Spark targets yet: the sample's own except branch prints the
# ComputeTargetException, and its last line then fails as it does on Azure when the attach failed.
from paddock.compute import ComputeTarget, HDInsightCompute
from paddock.exceptions import ComputeTargetException

try:
 # if you want to connect using SSH key instead of username/password you can provide parameters private_key_file and private_key_passphrase

 attach_config = HDInsightCompute.attach_configuration(address='127.0.0.1',
                                                       ssh_port=22, 
                                                       username='<ssh-username>', 
                                                       password='<ssh-pwd>')
 hdi_compute = ComputeTarget.attach(workspace=ws, 
                                    name='myhdi', 
                                    attach_configuration=attach_config)

except ComputeTargetException as e:
 print("Caught = {}".format(e.message))

hdi_compute.wait_for_completion(show_output=True)
