package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

var commonFlags = []propFlag{
	{"description", "description", kString, "free text describing the target"},
	{"tag", "tags", kTags, "a tag key=value (repeatable)"},
}

var clusterFlags = append([]propFlag{
	{"vm-size", "vm_size", kString, "node size, e.g. STANDARD_D2_V2 (see 'paddock compute sizes'; case-insensitive)"},
	{"max-nodes", "max_nodes", kInt, "most nodes the cluster scales up to (required, ≥ 1)"},
	{"min-nodes", "min_nodes", kInt, "nodes kept even when idle (default 0)"},
	{"vm-priority", "vm_priority", kString, "dedicated or lowpriority (preemptible) (default dedicated)"},
	{"idle-seconds-before-scaledown", "idle_seconds_before_scaledown", kInt, "idle seconds before a node is removed (default 1800)"},
	{"identity-type", "identity_type", kString, "None, SystemAssigned or UserAssigned (default None)"},
	{"identity-id", "identity_id", kList, "a user-assigned identity (repeatable; with --identity-type UserAssigned)"},
	{"remote-login-port-public-access", "remote_login_port_public_access", kString, "Enabled, Disabled or NotSpecified"},
	{"admin-username", "admin_username", kString, "admin account on the nodes"},
	{"admin-user-password-file", "admin_user_password", kSecretFile, "file holding the admin password (write-only; never shown)"},
	{"admin-user-ssh-key", "admin_user_ssh_key", kFile, "file holding the admin's OpenSSH public key"},
	{"provider", "provider", kString, "where nodes come from: local, ssh (an SSH pool), slurm, kubernetes, or sim on a server started with --sim (default local)"},
	{"from", "from", kString, "provider ssh: the SSH pool nodes come from; slurm, kubernetes: the attached target of that type"},
}, commonFlags...)

var instanceFlags = append([]propFlag{
	{"vm-size", "vm_size", kString, "instance size, e.g. STANDARD_DS3_V2 (see 'paddock compute sizes')"},
	{"ssh-public-access", "ssh_public_access", kBool, "expose an SSH endpoint (needs --admin-user-ssh-key)"},
	{"admin-user-ssh-key", "admin_user_ssh_key", kFile, "file holding the OpenSSH public key allowed to log in"},
	{"assigned-user", "assigned_user", kString, "the user the instance belongs to (default: you)"},
	{"max-concurrent-runs", "max_concurrent_runs", kInt, "runs at once; the rest queue (default: the size's cores)"},
	{"idle-time-before-shutdown", "idle_time_before_shutdown", kString, "stop after this long idle, e.g. 30m (default never)"},
}, commonFlags...)

// sshFlags are the flags of a target the server reaches over SSH (attach
// remote, attach slurm): where it logs in and with what. host says what
// the address names and login what the user does there.
func sshFlags(host, login string) []propFlag {
	return []propFlag{
		{"address", "address", kString, host + " (required)"},
		{"ssh-port", "ssh_port", kInt, "SSH port (default 22)"},
		{"username", "username", kString, login + " (required)"},
		{"password-file", "password", kSecretFile, "file holding the password (write-only; never shown)"},
		{"private-key-file", "private_key", kFile, "file holding the private key (write-only; never shown)"},
		{"passphrase-file", "private_key_passphrase", kSecretFile, "file holding the private key's passphrase"},
	}
}

var remoteFlags = slices.Concat(sshFlags("host name or IP address of the machine", "user to log in as"), []propFlag{
	{"pool", "pool", kString, "make the machine a host of this SSH pool: clusters with --provider ssh --from POOL take nodes from it"},
}, commonFlags)

var slurmFlags = slices.Concat(sshFlags("the login node's host name or IP address", "user to log in and submit jobs as"), []propFlag{
	{"partition", "partition", kString, "partition to submit to (default: the cluster's default)"},
	{"account", "account", kString, "account to charge"},
	{"qos", "qos", kString, "QoS of the jobs"},
	{"lowpriority-qos", "lowpriority_qos", kString, "QoS of low-priority (preemptible) jobs"},
	{"slurm-conf", "slurm_conf", kString, "SLURM_CONF on the login node, when the configuration is not in the default place"},
	{"rest-url", "rest_url", kString, "slurmrestd URL (not supported yet: use --address)"},
	{"jwt-file", "jwt", kSecretFile, "file holding a slurmrestd JWT (not supported yet)"},
}, commonFlags)

var sparkFlags = slices.Concat(sshFlags("the head node's host name or IP address", "user to log in and spark-submit as"), []propFlag{
	{"master", "master", kString, "spark-submit's --master: spark://HOST:PORT, yarn, k8s://…, local[N] (default: the head node's spark-defaults.conf)"},
	{"spark-home", "spark_home", kString, "where Spark is on the head node (default: spark-submit on the PATH)"},
	{"master-ui-url", "master_ui_url", kString, "the standalone master's web UI as the head node reaches it (default http://HOST:8080 for spark://HOST:PORT)"},
	{"num-executors", "num_executors", kInt, "--num-executors of every run (default: Spark's)"},
	{"executor-cores", "executor_cores", kInt, "--executor-cores of every run (default: Spark's)"},
	{"executor-memory", "executor_memory", kString, "--executor-memory of every run, e.g. 2g (default: Spark's)"},
}, commonFlags)

var kubernetesFlags = append([]propFlag{
	{"kubeconfig", "kubeconfig", kSecretFile, "kubeconfig file with a token or client certificate (write-only; never shown; required)"},
	{"context", "context", kString, "the kubeconfig's context to use (default: its current context)"},
	{"namespace", "namespace", kString, "namespace Paddock makes its Jobs and Pods in (default: the context's, else default)"},
	{"instance-type", "instance_types", kInstanceTypes, "a pod size NAME=cpu:4,memory:16Gi,gpu:1[,selector:KEY=VALUE] (repeatable); runs get the smallest that fits"},
	{"image", "image", kString, "pod image of runs that name none; must have python3 (default " + defaultKubernetesImage + ")"},
	{"server-url", "server_url", kString, "URL pods reach this server at (default: the server's own URL)"},
	{"lowpriority-priority-class", "lowpriority_priority_class", kString, "PriorityClass of low-priority cluster nodes' pods"},
	{"lowpriority-toleration", "lowpriority_tolerations", kList, "a toleration KEY[=VALUE][:EFFECT] of low-priority cluster nodes' pods (repeatable)"},
}, commonFlags...)

var databricksFlags = append([]propFlag{
	{"workspace-url", "workspace_url", kString, "the workspace's URL, https://HOST (required)"},
	{"access-token-file", "access_token", kSecretFile, "file holding a Databricks personal access token (write-only; never shown; required)"},
	{"cluster-id", "cluster_id", kString, "the all-purpose cluster runs go to (or --new-cluster-spec)"},
	{"new-cluster-spec", "new_cluster", kJSONFile, "JSON file with a Clusters API spec of a job cluster made for each run (spark_version, node_type_id, num_workers or autoscale)"},
	{"max-concurrent-runs", "max_concurrent_runs", kInt, "runs in flight in Databricks at once; the rest queue (default 10)"},
}, commonFlags...)

// defaultKubernetesImage is compute.DefaultKubernetesImage (the CLI does
// not import the server's packages).
const defaultKubernetesImage = "python:3.12-slim"

var updateFlags = append([]propFlag{
	{"min-nodes", "min_nodes", kInt, "cluster: nodes kept even when idle"},
	{"max-nodes", "max_nodes", kInt, "cluster: most nodes"},
	{"idle-seconds-before-scaledown", "idle_seconds_before_scaledown", kInt, "cluster: idle seconds before a node is removed"},
	{"max-concurrent-runs", "max_concurrent_runs", kInt, "instance: runs at once"},
	{"idle-time-before-shutdown", "idle_time_before_shutdown", kString, "instance: stop after this long idle (0 = never)"},
	{"identity-type", "identity_type", kString, "cluster: None, SystemAssigned or UserAssigned (None removes its identities)"},
	{"identity-id", "identity_id", kList, "cluster: a user-assigned identity (repeatable; with --identity-type UserAssigned; gives the whole list)"},
}, commonFlags...)

func newComputeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "compute",
		Aliases: []string{"computes"},
		Short:   "Create, attach, inspect and delete compute targets",
	}
	create := &cobra.Command{Use: "create", Short: "Create a cluster or an instance"}
	create.AddCommand(
		createCmd(g, "cluster", "Create an autoscaling cluster of nodes of one size", clusterFlags,
			`  paddock compute create cluster cpu-cluster --vm-size STANDARD_D2_V2 --max-nodes 4
  paddock compute create cluster low-pri --vm-size STANDARD_D2_V2 --max-nodes 4 --vm-priority lowpriority`),
		startWhenCreated(createCmd(g, "instance", "Create a personal compute instance", instanceFlags,
			`  paddock compute create instance my-box --vm-size STANDARD_DS3_V2 --max-concurrent-runs 2`)),
	)
	attach := &cobra.Command{Use: "attach", Short: "Attach a machine you already have"}
	attach.AddCommand(createCmd(g, "remote", "Attach a machine reachable over SSH (password or key); runs go to an agent Paddock installs there", remoteFlags,
		`  paddock compute attach remote gpu-box --address 10.0.0.5 --username ml --private-key-file ~/.ssh/id_ed25519`))
	attach.AddCommand(createCmd(g, "slurm", "Attach a Slurm cluster through its login node over SSH; runs become Slurm jobs", slurmFlags,
		`  paddock compute attach slurm hpc --address login.hpc --username ml --private-key-file ~/.ssh/id_ed25519 --partition gpu`))
	attach.AddCommand(createCmd(g, "spark", "Attach a Spark cluster through its head node over SSH; runs are spark-submitted there in client mode", sparkFlags,
		`  paddock compute attach spark spark1 --address head.spark --username ml --private-key-file ~/.ssh/id_ed25519 --master spark://head.spark:7077
  paddock run submit --compute spark1 --source . --stream -- wc.py input.txt`))
	attach.AddCommand(aliasCmd(createCmd(g, "slurm", "", slurmFlags,
		`  paddock compute attach batch hpc --address login.hpc --username ml --private-key-file ~/.ssh/id_ed25519`), "batch",
		"Azure ML's Batch target: attaches a Slurm cluster through its login node (creates a slurm target)"))
	for _, c := range attach.Commands() {
		c.Use = strings.Replace(c.Use, " NAME", " NAME --address A --username U (--password-file F | --private-key-file F)", 1)
	}
	kube := createCmd(g, "kubernetes", "Attach a namespace of a Kubernetes cluster; runs become Jobs, clusters' nodes pods", kubernetesFlags,
		`  paddock compute attach kubernetes k8s --kubeconfig paddock.kubeconfig --namespace ml
  paddock compute attach kubernetes k8s --kubeconfig paddock.kubeconfig --server-url http://paddock.example:8765 \
      --instance-type small=cpu:2,memory:8Gi --instance-type gpu=cpu:8,memory:64Gi,gpu:1,selector:gpu=a100`)
	kube.Use = "kubernetes NAME --kubeconfig FILE"
	attach.AddCommand(kube)
	dbx := createCmd(g, "databricks", "Attach a Databricks workspace; runs become Jobs runs of a spark_python_task on its cluster", databricksFlags,
		`  paddock compute attach databricks dbx --workspace-url https://adb-1234567890123456.7.azuredatabricks.net \
      --access-token-file token.txt --cluster-id 0101-120000-abcd123
  paddock compute attach databricks dbx-jobs --workspace-url https://adb-1234567890123456.7.azuredatabricks.net \
      --access-token-file token.txt --new-cluster-spec cluster.json
  paddock run submit --compute dbx --source . --stream -- train.py --epochs 2`)
	dbx.Use = "databricks NAME --workspace-url URL --access-token-file FILE (--cluster-id ID | --new-cluster-spec FILE)"
	attach.AddCommand(dbx)
	var attachable []string
	for _, c := range attach.Commands() {
		if c.Name() != "batch" {
			attachable = append(attachable, c.Name())
		}
	}
	attach.AddCommand(retiredCmd("adla", "Azure Data Lake Analytics was retired by Microsoft in February 2024, so Paddock does not offer it; run U-SQL work as a Spark or Python job instead"))
	cmd.AddCommand(create, attach, detachCmd(g, attachable), listCmd(g), showCmd(g), statusCmd(g), waitCmd(g), updateCmd(g), deleteCmd(g), sizesCmd(g),
		nodesCmd(g), preemptCmd(g), instanceActionCmd(g, "start"), instanceActionCmd(g, "stop"), instanceActionCmd(g, "restart"))
	return cmd
}

// aliasCmd renames a create command after the Azure ML type it stands
// for: it creates the same target and first says on stderr which type that
// is.
func aliasCmd(cmd *cobra.Command, name, short string) *cobra.Command {
	typ := strings.Fields(cmd.Use)[0]
	cmd.Use = strings.Replace(cmd.Use, typ, name, 1)
	cmd.Short = short
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		fmt.Fprintf(c.ErrOrStderr(), "note: %s is Azure ML's name; Paddock creates a %s target (see 'paddock compute attach %s --help')\n", name, typ, typ)
		return run(c, args)
	}
	return cmd
}

// retiredCmd is an Azure ML type whose service is gone: whatever it is
// given, it says so in one sentence and exits 2.
func retiredCmd(name, why string) *cobra.Command {
	return &cobra.Command{
		Use:                name + " NAME",
		Short:              "Not offered: the service was retired by its vendor",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return api.Invalid("type", "%s", why)
		},
	}
}

// annotStarts marks a create command whose targets start once provisioned
// (an instance), so create waits for Running as well.
const annotStarts = "paddock/starts"

// startWhenCreated marks a create command with annotStarts.
func startWhenCreated(cmd *cobra.Command) *cobra.Command {
	cmd.Annotations = map[string]string{annotStarts: "yes"}
	return cmd
}

func createCmd(g *globals, typ, short string, defs []propFlag, example string) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:     typ + " NAME",
		Short:   short,
		Example: example,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			props, err := propsFromFlags(cmd, defs)
			if err != nil {
				return err
			}
			return callAndEmitCompute(cmd, g, func(ctx context.Context, c *api.Client) (*api.Compute, error) {
				out, err := c.CreateCompute(ctx, api.ComputeCreate{Name: args[0], Type: typ, Properties: props})
				if err != nil || noWait {
					return out, err
				}
				if out, err = waitFor(cmd, c, args[0], false); err != nil || cmd.Annotations[annotStarts] == "" || out.ProvisioningState != api.StateSucceeded {
					return out, err
				}
				return waitInstance(cmd, c, args[0], "Running")
			})
		},
	}
	addPropFlags(cmd, defs)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the target is accepted, without waiting for provisioning")
	return cmd
}

// callAndEmitCompute is callAndEmit for a call that leaves a target in a
// provisioning state (create, update, wait): it shows the target, and
// exits 1 when it ended Failed.
func callAndEmitCompute(cmd *cobra.Command, g *globals, call func(context.Context, *api.Client) (*api.Compute, error)) error {
	out, err := callWith(cmd, g, call)
	if err != nil {
		return err
	}
	if err := emitAs(cmd, g, out, showTable); err != nil {
		return err
	}
	return failedErr(out)
}

// failedErr turns a target that ended Failed into exit code 1 with its
// provisioning errors on stderr.
func failedErr(c *api.Compute) error {
	if c == nil || c.ProvisioningState != api.StateFailed {
		return nil
	}
	msgs := make([]string, len(c.ProvisioningErrors))
	for i, e := range c.ProvisioningErrors {
		msgs[i] = e.Code + ": " + e.Message
	}
	return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("compute target %q failed to provision: %s", c.Name, strings.Join(msgs, "; "))}
}

// waitFor follows a target until its provisioning ends (or, with gone, until
// it is deleted), printing each state change on a terminal.
func waitFor(cmd *cobra.Command, c *api.Client, name string, gone bool) (*api.Compute, error) {
	errw := cmd.ErrOrStderr()
	tty := showProgress(cmd)
	start := time.Now()
	out, err := c.WaitCompute(cmd.Context(), name, gone, func(cur *api.Compute) {
		if tty {
			fmt.Fprintf(errw, "%s: %s (%.1fs)\n", name, cur.ProvisioningState, time.Since(start).Seconds())
		}
	})
	if err == context.DeadlineExceeded {
		return out, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("timed out waiting for compute target %q", name)}
	}
	if tty && err == nil && gone {
		fmt.Fprintf(errw, "%s: deleted (%.1fs)\n", name, time.Since(start).Seconds())
	}
	return out, err
}

func listCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the workspace's compute targets",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Compute, error) {
				items, err := c.ListComputes(ctx)
				return nonNil(items), err
			}, computeTable)
		},
	}
}

func showCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a compute target: properties (secrets omitted) and status",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Compute, error) {
				return c.GetCompute(ctx, args[0])
			}, showTable)
		},
	}
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show a compute target's live status",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.GetCompute(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g.output, out.Status, func(w io.Writer) {
				fmt.Fprintf(w, "provisioning_state:\t%s\n", out.ProvisioningState)
				p := flatten(out.Status)
				for _, k := range sortedKeys(p) {
					fmt.Fprintf(w, "%s:\t%s\n", k, p[k])
				}
				if id := out.Identity; id != nil && id.PrincipalID != "" {
					fmt.Fprintf(w, "identity:\t%s principal_id=%s\n", id.Type, id.PrincipalID)
				}
			})
		},
	}
}

func waitCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME",
		Short: "Wait until a compute target has finished provisioning",
		Long:  "Wait until the target's provisioning state is Succeeded, Failed or Canceled; exit 1 unless Succeeded.",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cmd.SetContext(ctx)
			return callAndEmitCompute(cmd, g, func(_ context.Context, c *api.Client) (*api.Compute, error) {
				return waitFor(cmd, c, args[0], false)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return cmd
}

func updateCmd(g *globals) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:     "update NAME",
		Short:   "Change a target's scale settings, identities, description or tags",
		Example: "  paddock compute update cpu-cluster --max-nodes 8 --idle-seconds-before-scaledown 600\n  paddock compute update cpu-cluster --identity-type UserAssigned --identity-id blob-reader",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			props, err := propsFromFlags(cmd, updateFlags)
			if err != nil {
				return err
			}
			return callAndEmitCompute(cmd, g, func(ctx context.Context, c *api.Client) (*api.Compute, error) {
				out, err := c.UpdateCompute(ctx, args[0], api.ComputeUpdate{Properties: props})
				if err != nil || noWait {
					return out, err
				}
				return waitFor(cmd, c, args[0], false)
			})
		},
	}
	addPropFlags(cmd, updateFlags)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return without waiting for the update to be applied")
	return cmd
}

func deleteCmd(g *globals) *cobra.Command {
	var noWait, force bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a compute target and release its nodes",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Compute, error) {
				out, err := c.DeleteCompute(ctx, args[0], force)
				if err != nil || noWait {
					return out, err
				}
				if _, err := waitFor(cmd, c, args[0], true); err != nil {
					return nil, err
				}
				out.ProvisioningState = "Deleted"
				return out, nil
			}, func(w io.Writer, out *api.Compute) {
				fmt.Fprintf(w, "compute target %s: %s\n", out.Name, out.ProvisioningState)
			})
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once deletion has started")
	cmd.Flags().BoolVar(&force, "force", false, "cancel the target's active runs instead of refusing")
	return cmd
}

func sizesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sizes",
		Short: "List the vm sizes targets can use (built in plus the admin's sizes.yaml)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Size, error) {
				sizes, warning, err := c.ListSizes(ctx)
				if err == nil && warning != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+warning)
				}
				return sizes, err
			}, func(w io.Writer, sizes []api.Size) {
				fmt.Fprintln(w, "NAME\tCORES\tMEMORY GiB\tGPUS\tFAMILY")
				for _, s := range sizes {
					fmt.Fprintf(w, "%s\t%d\t%g\t%d\t%s\n", s.Name, s.Cores, s.MemoryGB, s.GPUs, s.Family)
				}
			})
		},
	}
}

func nodesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes NAME",
		Short: "List a target's nodes and their states",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Node, error) {
				nodes, err := c.ListNodes(ctx, args[0])
				return nonNil(nodes), err
			}, func(w io.Writer, nodes []api.Node) {
				fmt.Fprintln(w, "NODE\tSTATE\tCORES\tMEMORY GiB\tGPUS\tADDRESS\tLAST SEEN")
				for _, n := range nodes {
					state := n.State
					if n.Reason != "" {
						state += " (" + n.Reason + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%g\t%g\t%d\t%s\t%s\n", n.ID, state, n.Cores, n.MemoryGB, len(n.GPUs),
						orDash(n.Address), age(n.LastSeen))
				}
			})
		},
	}
}

func preemptCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "preempt NAME NODE",
		Short: "Preempt a cluster node now, as a reclaimed low-priority VM would be (Owners, Compute Operators; tests and demos)",
		Long: `Preempt a node: its agent and runs are killed without warning. Runs on it are
restarted as a new attempt (reason Preempted) with the checkpoints they
wrote under ./outputs, and the autoscaler replaces the node.`,
		Args: exactArgs("NAME", "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.PreemptNode(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s of %s preempted\n", args[1], args[0])
			return nil
		},
	}
}

var instanceActionHelp = map[string]string{
	"start":   "Start a stopped compute instance (its queued runs then start)",
	"stop":    "Stop a compute instance: its node goes, its home directory and queued runs stay; running runs restart from their checkpoints when it starts again",
	"restart": "Restart a compute instance's node",
}

// instanceState is where an action leaves an instance.
var instanceState = map[string]string{"start": "Running", "stop": "Stopped", "restart": "Running"}

func instanceActionCmd(g *globals, action string) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   action + " NAME",
		Short: instanceActionHelp[action],
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Compute, error) {
				out, err := c.InstanceAction(ctx, args[0], action)
				if err != nil || noWait {
					return out, err
				}
				return waitInstance(cmd, c, args[0], instanceState[action])
			}, func(w io.Writer, out *api.Compute) {
				fmt.Fprintf(w, "compute instance %s: %s\n", out.Name, flatten(out.Status)["state"])
			})
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the request is accepted")
	return cmd
}

// waitInstance follows an instance until its state is want, showing the
// states it passes on a terminal.
func waitInstance(cmd *cobra.Command, c *api.Client, name, want string) (*api.Compute, error) {
	errw := cmd.ErrOrStderr()
	tty := showProgress(cmd)
	last := ""
	deadline := time.Now().Add(5 * time.Minute)
	for {
		cur, err := c.GetCompute(cmd.Context(), name)
		if err != nil {
			return nil, err
		}
		state := flatten(cur.Status)["state"]
		if tty && state != last {
			fmt.Fprintf(errw, "%s: %s\n", name, state)
		}
		last = state
		if state == want {
			return cur, nil
		}
		if state == "Failed" || time.Now().After(deadline) {
			return cur, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("compute instance %s is %s, not %s", name, state, want)}
		}
		select {
		case <-cmd.Context().Done():
			return nil, cmd.Context().Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// detachCmd detaches targets of the attachable types (those `compute
// attach` makes).
func detachCmd(g *globals, attachable []string) *cobra.Command {
	return &cobra.Command{
		Use:   "detach NAME",
		Short: "Detach an attached machine: stop its agent and remove what Paddock installed",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cur, err := c.GetCompute(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !slices.Contains(attachable, cur.Type) {
				return api.Invalid("name", "%s is a %s target, not an attached one; use `paddock compute delete`", cur.Name, cur.Type)
			}
			var st struct {
				Reachable *bool  `json:"reachable"`
				Error     string `json:"error"`
			}
			if json.Unmarshal(cur.Status, &st) == nil && st.Reachable != nil && !*st.Reachable {
				// The server lets an unreachable machine go without cleaning
				// it up; the person detaching it is the one who must know.
				why := ""
				if st.Error != "" {
					why = " (" + st.Error + ")"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s could not be reached%s; if it still cannot, it is detached without cleaning up: stop its `paddock agent` and remove ~/.paddock-agent there by hand\n", cur.Name, why)
			}
			if _, err := c.DeleteCompute(cmd.Context(), args[0], false); err != nil {
				return err
			}
			if _, err := waitFor(cmd, c, args[0], true); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "compute target %s: detached\n", cur.Name)
			return nil
		},
	}
}
