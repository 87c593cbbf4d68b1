# Seed: add a system-assigned managed identity to an existing cluster (cpu_cluster: the cluster
# of the sample before). No imports to change.

# add a system-assigned managed identity
cpu_cluster.add_identity(identity_type="SystemAssigned")
