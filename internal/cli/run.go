package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/backoff"
	"github.com/paddock-ml/paddock/internal/snapshot"
	"github.com/spf13/cobra"
)

func newRunCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "run",
		Aliases: []string{"runs"},
		Short:   "Submit training runs and follow, inspect, cancel and download them",
	}
	cmd.AddCommand(runSubmitCmd(g), runListCmd(g), runShowCmd(g), runLogsCmd(g), runCancelCmd(g),
		runWaitCmd(g), runDownloadCmd(g), runMetricsCmd(g))
	return cmd
}

// submitFlags are run submit's flags, turned into a submission by build.
type submitFlags struct {
	in                             api.RunSubmit
	source, requirements, duration string
	conda                          string
	envs, tags                     []string
	cores, memGB                   float64
	gpus                           int
	stream                         bool
	idempotencyKey                 string
	spec                           string
	startInstance                  bool
	spark                          api.SparkOptions
}

// build checks the flags that can be checked here and returns the
// submission (without its source, which is uploaded later).
func (sf *submitFlags) build(cmd *cobra.Command, args []string) (api.RunSubmit, error) {
	in := sf.in
	if len(args) == 0 {
		return in, api.Invalid("command", "the command to run is required after --, e.g. paddock run submit --compute local -- python3 train.py")
	}
	if sf.spec != "" {
		cs, err := parseComputeSpec(sf.spec)
		if err != nil {
			return in, err
		}
		in.ComputeSpec = cs
	}
	if in.Compute == "" && in.ComputeSpec == nil {
		return in, api.Invalid("compute", "--compute (see `paddock compute list`) or --compute-spec is required")
	}
	in.Command = args
	set := 0
	for _, f := range []string{"python", "requirements", "image", "conda"} {
		if cmd.Flags().Changed(f) {
			set++
		}
	}
	if set > 1 {
		return in, api.Invalid("environment", "give only one of --python, --requirements, --conda and --image")
	}
	if cmd.Flags().Changed("cores") || cmd.Flags().Changed("memory-gb") || cmd.Flags().Changed("gpus") {
		in.Resources = &api.Resources{Cores: sf.cores, MemoryGB: sf.memGB, GPUs: sf.gpus}
	}
	if cmd.Flags().Changed("num-executors") || cmd.Flags().Changed("executor-cores") || cmd.Flags().Changed("executor-memory") {
		in.Spark = &sf.spark
	}
	if sf.duration != "" {
		d, err := time.ParseDuration(sf.duration)
		if err != nil || d <= 0 {
			return in, api.Invalid("max-run-duration", "--max-run-duration must be a duration such as 90s or 2h, not %q", sf.duration)
		}
		in.MaxRunDurationSeconds = int64(d.Round(time.Second) / time.Second)
	}
	if len(sf.envs) > 0 {
		in.Env = map[string]string{}
		for _, kv := range sf.envs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return in, api.Invalid("env", "--env must be KEY=VALUE, not %q", kv)
			}
			in.Env[k] = v
		}
	}
	if sf.requirements != "" {
		data, err := os.ReadFile(sf.requirements)
		if err != nil {
			return in, api.Invalid("requirements", "--requirements: cannot read %s: %v", sf.requirements, unwrapPathErr(err))
		}
		in.Environment.Requirements = string(data)
	}
	if sf.conda != "" {
		data, err := os.ReadFile(sf.conda)
		if err != nil {
			return in, api.Invalid("conda", "--conda: cannot read %s: %v", sf.conda, unwrapPathErr(err))
		}
		in.Environment.Conda = string(data)
	}
	if len(sf.tags) > 0 {
		in.Tags = map[string]string{}
		for _, kv := range sf.tags {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return in, api.Invalid("tag", "--tag must be NAME=VALUE, not %q", kv)
			}
			in.Tags[k] = v
		}
	}
	return in, nil
}

func runSubmitCmd(g *globals) *cobra.Command {
	var sf submitFlags
	cmd := &cobra.Command{
		Use:   "submit --compute NAME [flags] -- COMMAND [ARGS...]",
		Short: "Submit a run: snapshot the source, queue the command, print the run id",
		Long: `Submit a run. The source directory is snapshotted (honouring a .paddockignore
with .gitignore syntax) and uploaded; the command runs in a copy of it on a node
of the compute target. Files the run writes under ./outputs are kept.

With --stream the command follows the run, printing its log, and exits with
the run's outcome: 0 when it completed, its exit code when it failed.`,
		Example: `  paddock run submit --compute local --source . -- python3 train.py --epochs 3
  paddock run submit --compute local --source . --requirements requirements.txt --stream -- python3 train.py`,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := sf.build(cmd, args)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if sf.source != "" {
				if in.Source, err = uploadSource(ctx, c, sf.source, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if sf.startInstance && in.Compute != "" {
				if _, err := c.InstanceAction(ctx, in.Compute, "start"); err != nil {
					return err
				}
			}
			key := sf.idempotencyKey
			if key == "" {
				key = randomKey()
			}
			run, err := submitWithRetry(ctx, c, in, key)
			if err != nil {
				return err
			}
			if !sf.stream {
				return emit(cmd.OutOrStdout(), g.output, run, func(w io.Writer) { fmt.Fprintln(w, run.ID) })
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "run "+run.ID+" submitted")
			if run, err = followRun(cmd, c, run.ID, true); err != nil {
				return err
			}
			return outcomeErr(cmd.ErrOrStderr(), run)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.in.Compute, "compute", "", "the compute target to run on")
	f.StringVar(&sf.spec, "compute-spec", "", "instead of --compute: a cluster made for this run and deleted when it ends, e.g. vm_size=STANDARD_D2_V2,max_nodes=2[,min_nodes=N][,vm_priority=lowpriority]")
	f.StringVar(&sf.source, "source", "", "directory to snapshot and run in (honours .paddockignore)")
	f.StringVar(&sf.in.Experiment, "experiment", "", "experiment the run belongs to (default \"default\")")
	f.IntVar(&sf.in.NodeCount, "nodes", 0, "number of nodes (default 1)")
	f.Float64Var(&sf.cores, "cores", 0, "cores per node (default 1)")
	f.Float64Var(&sf.memGB, "memory-gb", 0, "memory per node in GiB, enforced where cgroups allow (default: no limit)")
	f.IntVar(&sf.gpus, "gpus", 0, "GPUs per node (CUDA_VISIBLE_DEVICES is set)")
	f.StringArrayVar(&sf.envs, "env", nil, "environment variable KEY=VALUE for the run (repeatable)")
	f.StringVar(&sf.in.Environment.Python, "python", "", "an existing python interpreter on the node")
	f.StringVar(&sf.requirements, "requirements", "", "a requirements.txt: the run gets a venv built once per content")
	f.StringVar(&sf.in.Environment.Image, "image", "", "a container image (needs podman or docker on the node; on a kubernetes target, the pod's image)")
	f.StringVar(&sf.conda, "conda", "", "a conda environment file (environment.yml): its pip packages in a venv, conda packages with conda on the node")
	f.IntVar(&sf.in.ProcessCountPerNode, "process-count-per-node", 0, "processes per node, each with its LOCAL_RANK and RANK (default 1)")
	f.StringArrayVar(&sf.tags, "tag", nil, "a tag NAME=VALUE for the run (repeatable)")
	f.StringVar(&sf.duration, "max-run-duration", "", "stop the run after this long, e.g. 2h")
	f.StringVar(&sf.in.Distribution, "distribution", "", "none, pytorch or mpi")
	f.IntVar(&sf.spark.NumExecutors, "num-executors", 0, "spark targets: spark-submit's --num-executors (default: the target's)")
	f.IntVar(&sf.spark.ExecutorCores, "executor-cores", 0, "spark targets: spark-submit's --executor-cores (default: the target's)")
	f.StringVar(&sf.spark.ExecutorMemory, "executor-memory", "", "spark targets: spark-submit's --executor-memory, e.g. 2g (default: the target's)")
	f.BoolVar(&sf.stream, "stream", false, "follow the run's log and exit with its outcome")
	f.BoolVar(&sf.startInstance, "start", false, "start the compute instance first if it is stopped")
	f.StringVar(&sf.idempotencyKey, "idempotency-key", "", "make retried submissions return the first run (default: a fresh key per invocation)")
	return cmd
}

func randomKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// submitWithRetry retries a submission that could not reach the server; the
// idempotency key makes a retry of a request that did arrive harmless.
func submitWithRetry(ctx context.Context, c *api.Client, in api.RunSubmit, key string) (*api.Run, error) {
	var err error
	retry := backoff.New(200*time.Millisecond, 2*time.Second)
	for range 4 {
		var run *api.Run
		if run, err = c.SubmitRun(ctx, in, key); err == nil || !errors.Is(err, api.ErrUnavailable) {
			return run, err
		}
		if !retry.Wait(ctx) {
			return nil, ctx.Err()
		}
	}
	return nil, err
}

// uploadSource snapshots dir and uploads it unless the server has it; what
// the snapshot leaves out (bad symlinks) is a warning on warn.
func uploadSource(ctx context.Context, c *api.Client, dir string, warn io.Writer) (string, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", api.Invalid("source", "--source %s is not a directory", dir)
	}
	var buf bytes.Buffer
	info, err := snapshot.Create(dir, &buf, snapshot.DefaultLimits)
	if err != nil {
		return "", api.Invalid("source", "%v", err)
	}
	for _, s := range info.Skipped {
		fmt.Fprintf(warn, "warning: --source %s: %s\n", dir, s)
	}
	digest, _, err := snapshot.Digest(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return "", err
	}
	if ok, err := c.HasSnapshot(ctx, digest); err != nil {
		return "", err
	} else if ok {
		return digest, nil
	}
	ref, err := c.UploadSnapshot(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return "", err
	}
	return ref.Digest, nil
}

// followRun follows a run until it ends and returns the final run. With
// printLogs it prints the log as it comes (stdout and stderr lines to
// their own streams); when a person watches (showProgress) it also shows
// on stderr the run's status and why it waits, as they change.
func followRun(cmd *cobra.Command, c *api.Client, id string, printLogs bool) (*api.Run, error) {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	out, errw := cmd.OutOrStdout(), io.Writer(&syncWriter{w: cmd.ErrOrStderr()})
	var progress func(*api.Run)
	if showProgress(cmd) {
		progress = runProgress(errw, id)
	}
	type ended struct {
		run *api.Run
		err error
	}
	done := make(chan ended, 1)
	go func() {
		r, err := c.WaitRun(ctx, id, progress)
		done <- ended{r, err}
	}()
	if printLogs {
		if err := c.FollowLogs(ctx, id, 0, true, logPrinter(out, errw)); err != nil {
			return nil, err
		}
	}
	e := <-done
	return e.run, e.err
}

// logPrinter prints log lines as text, each to the stream it came from;
// a multi-node run's lines from ranks other than 0 start with "[rank N] ".
func logPrinter(out, errw io.Writer) func(api.LogLine) error {
	return func(l api.LogLine) error {
		w := out
		if l.Stream == "stderr" {
			w = errw
		}
		prefix := ""
		if l.Rank > 0 {
			prefix = fmt.Sprintf("[rank %d] ", l.Rank)
		}
		_, err := fmt.Fprintln(w, prefix+l.Text)
		return err
	}
}

// outcomeErr maps a finished run to the CLI's exit: 0 when it completed,
// its exit code when it failed with one, else 1.
func outcomeErr(errw io.Writer, r *api.Run) error {
	if r.Status == api.RunCompleted {
		return nil
	}
	msg := r.Error
	if msg == "" {
		msg = string(r.Status)
	}
	fmt.Fprintf(errw, "run %s %s: %s\n", r.ID, strings.ToLower(string(r.Status)), msg)
	if r.ExitCode != nil && *r.ExitCode > 0 && *r.ExitCode < 256 {
		return exitError{code: *r.ExitCode}
	}
	return exitError{code: 1}
}

func runListCmd(g *globals) *cobra.Command {
	var compute string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Run, error) {
				runs, err := c.ListRuns(ctx, compute, limit)
				return nonNil(runs), err
			}, func(w io.Writer, runs []api.Run) {
				fmt.Fprintln(w, "ID\tSTATUS\tCOMPUTE\tEXPERIMENT\tAGE\tDURATION\tCOMMAND")
				for _, r := range runs {
					status := string(r.Status)
					if r.Status == api.RunQueued && r.StatusReason != "" {
						status += " (" + truncate(r.StatusReason, 40) + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, status, r.Compute, r.Experiment,
						age(r.CreatedAt), duration(r), truncate(strings.Join(r.Command, " "), 40))
				}
			})
		},
	}
	cmd.Flags().StringVar(&compute, "compute", "", "only runs of this compute target")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many runs")
	return cmd
}

func duration(r api.Run) string {
	if r.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if r.EndedAt != nil {
		end = *r.EndedAt
	}
	return end.Sub(*r.StartedAt).Round(time.Millisecond).String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func runShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a run: status, attempts, metrics, outputs",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Run, error) {
				return c.GetRun(ctx, args[0])
			}, showRun)
		},
	}
}

func showRun(w io.Writer, r *api.Run) {
	fmt.Fprintf(w, "ID:\t%s\n", r.ID)
	fmt.Fprintf(w, "Status:\t%s\n", r.Status)
	if r.StatusReason != "" {
		fmt.Fprintf(w, "Reason:\t%s\n", r.StatusReason)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "Error:\t%s\n", r.Error)
	}
	if r.ExitCode != nil {
		fmt.Fprintf(w, "Exit code:\t%d\n", *r.ExitCode)
	}
	if r.Interactive {
		fmt.Fprintf(w, "Compute:\t(interactive: its client logs to it and ends it)\n")
	} else {
		fmt.Fprintf(w, "Compute:\t%s\n", r.Compute)
	}
	fmt.Fprintf(w, "Experiment:\t%s\n", r.Experiment)
	fmt.Fprintf(w, "Command:\t%s\n", jsonText(r.Command))
	fmt.Fprintf(w, "Created:\t%s by %s\n", r.CreatedAt.Format(time.RFC3339), r.CreatedBy)
	fmt.Fprintf(w, "Duration:\t%s\n", duration(*r))
	if r.MaxRunDurationSeconds > 0 {
		limit := (time.Duration(r.MaxRunDurationSeconds) * time.Second).String()
		if r.MaxRunDurationFromPolicy {
			limit += " (the workspace's policy)"
		}
		fmt.Fprintf(w, "Max duration:\t%s\n", limit)
	}
	if len(r.Identities) > 0 {
		fmt.Fprintf(w, "Identities:\t%s (%s)\n", strings.Join(r.Identities, ", "), r.IdentityType)
	}
	for _, a := range r.Attempts {
		line := fmt.Sprintf("#%d on %s: %s", a.Number, a.Node, a.Status)
		if a.ExitCode != nil {
			line += fmt.Sprintf(", exit %d", *a.ExitCode)
		}
		if a.Reason != "" {
			line += " (" + a.Reason + ")"
		}
		fmt.Fprintf(w, "Attempt:\t%s\n", line)
	}
	for _, name := range sortedKeys(r.Metrics) {
		m := r.Metrics[name]
		fmt.Fprintf(w, "Metric:\t%s = %s (step %d)\n", name, metricText(m), m.Step)
	}
	for _, k := range sortedKeys(r.Tags) {
		fmt.Fprintf(w, "Tag:\t%s = %s\n", k, r.Tags[k])
	}
	for _, o := range r.Outputs {
		fmt.Fprintf(w, "Output:\t%s (%d bytes)\n", o.Path, o.Size)
	}
}

func runLogsCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a run's log; -f follows it until the run ends",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output != "table" {
				enc := json.NewEncoder(out)
				return c.FollowLogs(cmd.Context(), args[0], 0, follow, func(l api.LogLine) error { return enc.Encode(l) })
			}
			if follow {
				// The same as --stream: the log, and on a terminal why the
				// run waits while it waits.
				_, err := followRun(cmd, c, args[0], true)
				return err
			}
			return c.FollowLogs(cmd.Context(), args[0], 0, false, logPrinter(out, cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the run ends")
	return cmd
}

func runCancelCmd(g *globals) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a run (its whole process tree) and mark it Canceled",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Run, error) {
				r, err := c.CancelRun(ctx, args[0])
				if err != nil || noWait || r.Status.Terminal() {
					return r, err
				}
				return c.WaitRun(ctx, args[0], nil)
			}, func(w io.Writer, r *api.Run) { fmt.Fprintf(w, "run %s: %s\n", r.ID, r.Status) })
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the cancel is accepted")
	return cmd
}

func runWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a run to end, say how it ended and exit with its outcome",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := followRun(cmd, c, args[0], false)
			if err != nil {
				return err
			}
			if err := emit(cmd.OutOrStdout(), g.output, r, func(w io.Writer) {
				if r.Status == api.RunCompleted { // outcomeErr says how it ended otherwise
					fmt.Fprintf(w, "run %s: %s\n", r.ID, r.Status)
				}
			}); err != nil {
				return err
			}
			return outcomeErr(cmd.ErrOrStderr(), r)
		},
	}
}

func runDownloadCmd(g *globals) *cobra.Command {
	var to string
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "download ID",
		Short: "Download a run's outputs (what it wrote under ./outputs)",
		Long: `Download a run's outputs into a directory (default ./ID). Local files are
never deleted, and never replaced unless --overwrite is given: a path the
outputs contain that exists locally stops the download (exit 4) before
anything is written.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if to == "" {
				to = args[0]
			}
			body, err := c.Outputs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer body.Close()
			if err := os.MkdirAll(to, 0o755); err != nil {
				return api.Invalid("to", "--to %s: %v", to, unwrapPathErr(err))
			}
			// Extract beside the destination and move files in, so a failed
			// download leaves no half-written tree.
			tmp, err := os.MkdirTemp(to, ".paddock-download-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			info, err := snapshot.Extract(body, tmp, snapshot.Limits{MaxBytes: 1 << 40, MaxFiles: 1 << 30})
			if err != nil {
				return fmt.Errorf("downloading outputs: %w", err)
			}
			if err := placeDownload(tmp, to, overwrite); err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g.output, map[string]any{"to": to, "files": info.Files, "bytes": info.Bytes}, func(w io.Writer) {
				fmt.Fprintf(w, "downloaded %d entries (%d bytes) to %s\n", info.Files, info.Bytes, to)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "directory to put the files in (default ./ID)")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace local files the outputs contain (others are never touched)")
	return cmd
}

func runMetricsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "metrics ID",
		Short: "Print every metric value a run logged",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Metric, error) {
				return c.Metrics(ctx, args[0])
			}, func(w io.Writer, ms []api.Metric) {
				fmt.Fprintln(w, "NAME\tSTEP\tVALUE\tTIME")
				for _, m := range ms {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", m.Name, m.Step, metricText(m), m.Time.Format(time.RFC3339Nano))
				}
			})
		},
	}
}

// metricText is a metric's value as a table shows it: a number, a quoted
// string, a row's or a JSON value's JSON, or the file of an image.
func metricText(m api.Metric) string {
	switch m.Kind {
	case api.MetricString:
		return strconv.Quote(m.Text)
	case api.MetricRow, api.MetricJSON:
		return string(m.Data)
	case api.MetricImage:
		return "image " + m.Text
	}
	return strconv.FormatFloat(m.Value, 'g', -1, 64)
}

// parseComputeSpec reads "vm_size=S,max_nodes=N,...".
func parseComputeSpec(s string) (*api.ComputeSpec, error) {
	cs := &api.ComputeSpec{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, api.Invalid("compute-spec", "--compute-spec takes key=value pairs separated by commas, not %q", kv)
		}
		var err error
		switch k {
		case "vm_size":
			cs.VMSize = v
		case "max_nodes":
			cs.MaxNodes, err = strconv.Atoi(v)
		case "min_nodes":
			cs.MinNodes, err = strconv.Atoi(v)
		case "vm_priority":
			cs.VMPriority = v
		default:
			return nil, api.Invalid("compute-spec", "--compute-spec: unknown key %q (vm_size, max_nodes, min_nodes, vm_priority)", k)
		}
		if err != nil {
			return nil, api.Invalid("compute-spec", "--compute-spec: %s must be a number, not %q", k, v)
		}
	}
	return cs, nil
}
