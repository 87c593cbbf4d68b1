# Seed: attach a remote virtual machine. Changed: the imports, and the VM's Azure resource id for the
# address of the test's sshd; the test puts its port, user and password in place of 22, <username>
# and <password>.
from paddock.compute import RemoteCompute, ComputeTarget

# Create the compute config 
compute_target_name = "attach-dsvm"

attach_config = RemoteCompute.attach_configuration(address='127.0.0.1',
                                                ssh_port=22,
                                                username='<username>',
                                                password="<password>")

# Attach the compute
compute = ComputeTarget.attach(ws, compute_target_name, attach_config)

compute.wait_for_completion(show_output=True)
