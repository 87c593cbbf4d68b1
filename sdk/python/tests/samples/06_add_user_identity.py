# Seed: add a user-assigned managed identity to an existing cluster. No imports to change; the
# test puts a real identity's name in place of <user_assigned_identity>.

# add a user-assigned managed identity
cpu_cluster.add_identity(identity_type="UserAssigned", 
                            identity_id=['/subscriptions/<subcription_id>/resourcegroups/<resource_group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<user_assigned_identity>'])
