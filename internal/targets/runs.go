package targets

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/conda"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
)

var (
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	experimentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)
	// imageRef is a container image reference (registry/name:tag@digest):
	// never an option to podman or docker, never white space.
	imageRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$`)
)

// Limits of a submission (documented in docs/runs.md).
const (
	maxCommandArgs   = 4096
	maxRequirements  = 1 << 20
	maxEnvVars       = 256
	defaultExperient = "default"
	// MaxRunDurationSeconds bounds max_run_duration_seconds: a year.
	MaxRunDurationSeconds = 365 * 24 * 60 * 60
	maxCores              = 1024
	maxMemoryGB           = 64 << 10 // 64 TiB
	maxGPUs               = 64
	maxPath               = 4096
	maxProcessesPerNode   = 256
)

// ValidateRun checks a submission and returns the run to queue (without id
// or place in the queue, which the dispatcher gives it). hasSource reports
// whether a snapshot digest is stored.
func (s *Service) ValidateRun(ctx context.Context, ws, user string, in api.RunSubmit, hasSource func(string) bool) (store.Run, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return store.Run{}, err
	}
	target, rules, err := s.runTarget(ctx, ws, user, in.Compute)
	if err != nil {
		return store.Run{}, err
	}
	if len(in.Command) == 0 || strings.TrimSpace(in.Command[0]) == "" {
		return store.Run{}, api.Invalid("command", "command is required, e.g. `paddock run submit --compute local -- python3 train.py`")
	}
	if len(in.Command) > maxCommandArgs {
		return store.Run{}, api.Invalid("command", "command has more than %d arguments", maxCommandArgs)
	}
	if in.Experiment, err = ExperimentName(in.Experiment); err != nil {
		return store.Run{}, err
	}
	if in.Source != "" && !hasSource(in.Source) {
		return store.Run{}, api.Invalid("source", "source snapshot %q is not stored on the server; upload it first (PUT .../snapshots)", in.Source)
	}
	env := in.Environment
	if err := checkEnvironment(in.Command, in.Env, env); err != nil {
		return store.Run{}, err
	}
	res, err := runResources(rules, in.Resources)
	if err != nil {
		return store.Run{}, err
	}
	if in.NodeCount == 0 {
		in.NodeCount = 1
	}
	if err := fitsTarget(target.Name, rules, res, in.NodeCount); err != nil {
		return store.Run{}, err
	}
	if in.ProcessCountPerNode == 0 {
		in.ProcessCountPerNode = 1
	}
	if in.ProcessCountPerNode < 1 || in.ProcessCountPerNode > maxProcessesPerNode {
		return store.Run{}, api.Invalid("process_count_per_node", "process_count_per_node must be 1 to %d, not %d", maxProcessesPerNode, in.ProcessCountPerNode)
	}
	if in.Distribution == "" {
		in.Distribution = "none"
	}
	if in.Distribution != "none" && in.Distribution != "pytorch" && in.Distribution != "mpi" {
		return store.Run{}, api.Invalid("distribution", "distribution must be none, pytorch or mpi, not %q", in.Distribution)
	}
	if in.MaxRunDurationSeconds < 0 || in.MaxRunDurationSeconds > MaxRunDurationSeconds {
		return store.Run{}, api.Invalid("max_run_duration_seconds", "max_run_duration_seconds must be 0 (no limit) to %d (a year), not %d", MaxRunDurationSeconds, in.MaxRunDurationSeconds)
	}
	pol, err := s.policyOf(ctx, ws)
	if err != nil {
		return store.Run{}, err
	}
	maxDuration, fromPolicy, err := pol.RunDuration(in.MaxRunDurationSeconds)
	if err != nil {
		s.Policy.Fire(ctx, policy.Event{Workspace: ws, Policy: policy.NameMaxRunDuration, Action: "refused", Compute: target.Name,
			User: user, Limit: strconv.FormatInt(pol.MaxRunDurationSeconds, 10), Message: err.Error()})
		return store.Run{}, err
	}
	// The run holds its target's identities as they are now; a change to
	// them reaches the runs submitted after it.
	idType, ids := identities.ForRun(target)
	return store.Run{
		Workspace: ws,
		Run: api.Run{
			Experiment: in.Experiment, Compute: target.Name, Command: in.Command, Source: in.Source,
			Environment: env, Env: in.Env, NodeCount: in.NodeCount, ProcessCountPerNode: in.ProcessCountPerNode,
			Distribution: in.Distribution, Resources: res, MaxRunDurationSeconds: maxDuration,
			MaxRunDurationFromPolicy: fromPolicy, IdentityType: idType, Identities: ids,
			CreatedBy: user, Attempts: []api.Attempt{},
		},
	}, nil
}

// ExperimentName checks an experiment's name; "" is the default one.
func ExperimentName(name string) (string, error) {
	if name == "" {
		return defaultExperient, nil
	}
	if !experimentName.MatchString(name) {
		return "", api.Invalid("experiment", "experiment %q must be 1 to 255 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return name, nil
}

// runTarget looks up the compute target a run is submitted to and the rules
// its kind sets for runs, refusing one the user may not use or that takes no
// runs.
func (s *Service) runTarget(ctx context.Context, ws, user, name string) (store.Compute, compute.RunRules, error) {
	if name == "" {
		return store.Compute{}, compute.RunRules{}, api.Invalid("compute", "compute is required: the name of a compute target (`paddock compute list`)")
	}
	target, err := s.Store.GetCompute(ctx, ws, name)
	if errors.Is(err, api.ErrNotFound) {
		return store.Compute{}, compute.RunRules{}, api.Invalid("compute", "compute %q is not a compute target of workspace %q (`paddock compute list`)", name, ws)
	}
	if err != nil {
		return store.Compute{}, compute.RunRules{}, err
	}
	if target.State != api.StateSucceeded {
		return store.Compute{}, compute.RunRules{}, api.Conflict("compute target %q is %s; runs can be submitted once it is Succeeded", target.Name, target.State)
	}
	if err := mayUse(user, target); err != nil {
		return store.Compute{}, compute.RunRules{}, err
	}
	rules, runnable, err := compute.RunRulesOf(target, s.Sizes)
	switch {
	case !runnable:
		return store.Compute{}, compute.RunRules{}, api.Invalid("compute", "runs on %s targets are not supported by this server yet; submit to a target of type %s",
			target.Type, strings.Join(compute.RunnableTypes(), ", "))
	case err != nil:
		return store.Compute{}, compute.RunRules{}, err
	case rules.Refuse != "":
		return store.Compute{}, compute.RunRules{}, api.Invalid("compute", "%s: %s", target.Name, rules.Refuse)
	}
	return target, rules, nil
}

// CheckEnvironment checks an environment and its variables as a run's
// would be (a registered environment is one runs will take).
func CheckEnvironment(env api.Environment, vars map[string]string) error {
	return checkEnvironment(nil, vars, env)
}

// checkEnvironment checks a run's environment (at most one of python,
// requirements and image) and its variables.
func checkEnvironment(command []string, vars map[string]string, env api.Environment) error {
	set := 0
	for _, v := range []string{env.Python, env.Requirements, env.Image, env.Conda} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return api.Invalid("environment", "give at most one of python, requirements, image and conda")
	}
	if len(env.Requirements) > maxRequirements {
		return api.Invalid("environment.requirements", "requirements must be at most %d bytes", maxRequirements)
	}
	if len(env.Conda) > maxRequirements {
		return api.Invalid("environment.conda", "conda must be at most %d bytes", maxRequirements)
	}
	if env.Conda != "" {
		if _, err := conda.Parse(env.Conda); err != nil {
			return err
		}
	}
	if err := checkStrings(command, vars, env); err != nil {
		return err
	}
	if len(vars) > maxEnvVars {
		return api.Invalid("env", "at most %d environment variables are allowed", maxEnvVars)
	}
	for k := range vars {
		if !envName.MatchString(k) {
			return api.Invalid("env", "environment variable name %q must be letters, digits and '_', not starting with a digit", k)
		}
		if strings.HasPrefix(k, "PADDOCK_") {
			return api.Invalid("env", "environment variable %s is set by Paddock and cannot be given", k)
		}
	}
	return nil
}

// runResources fills in the target's default cores and checks the bounds.
func runResources(rules compute.RunRules, asked *api.Resources) (api.Resources, error) {
	// A run takes the target's default cores (one; none on an instance,
	// whose runs share its cores, max_concurrent_runs at a time).
	cores := rules.DefaultCores
	res := api.Resources{Cores: cores}
	if asked != nil {
		res = *asked
		if res.Cores == 0 {
			res.Cores = cores
		}
	}
	switch {
	case res.Cores < 0 || res.Cores > maxCores:
		return api.Resources{}, api.Invalid("resources.cores", "resources.cores must be 0 to %d, not %g", maxCores, res.Cores)
	case res.MemoryGB < 0 || res.MemoryGB > maxMemoryGB:
		return api.Resources{}, api.Invalid("resources.memory_gb", "resources.memory_gb must be 0 to %d, not %g", maxMemoryGB, res.MemoryGB)
	case res.GPUs < 0 || res.GPUs > maxGPUs:
		return api.Resources{}, api.Invalid("resources.gpus", "resources.gpus must be 0 to %d, not %d", maxGPUs, res.GPUs)
	}
	return res, nil
}

// checkStrings refuses what would reach a run's argv, environment or file
// system and cannot: a NUL byte ends a C string, so the run would fail
// later with a confusing error, or run something else than asked.
func checkStrings(command []string, vars map[string]string, env api.Environment) error {
	for i, arg := range command {
		if strings.ContainsRune(arg, 0) {
			return api.Invalid("command", "command argument %d contains a NUL byte, which no program can receive", i)
		}
	}
	for k, v := range vars {
		if strings.ContainsRune(v, 0) {
			return api.Invalid("env", "the value of environment variable %s contains a NUL byte", k)
		}
	}
	switch {
	case strings.ContainsFunc(env.Python, unicode.IsControl) || len(env.Python) > maxPath:
		return api.Invalid("environment.python", "python must be a path or command name of at most %d bytes without control characters", maxPath)
	case strings.ContainsRune(env.Requirements, 0):
		return api.Invalid("environment.requirements", "requirements contains a NUL byte; give the text of a requirements file")
	case strings.ContainsRune(env.Conda, 0):
		return api.Invalid("environment.conda", "conda contains a NUL byte; give the text of a conda environment file")
	case env.Image != "" && !imageRef.MatchString(env.Image):
		return api.Invalid("environment.image", "image %q must be an image reference such as python:3.12 or ghcr.io/org/img@sha256:…, starting with a letter or digit", env.Image)
	}
	return nil
}

// fitsTarget refuses a run the target could never hold: more nodes than
// it may have, or more than a node of its size has. It would wait forever.
func fitsTarget(name string, rules compute.RunRules, res api.Resources, nodes int) error {
	maxNodes := max(rules.MaxNodes, 1)
	switch {
	case nodes < 1:
		return api.Invalid("node_count", "node_count must be at least 1")
	case nodes > 1 && rules.MaxNodes == 0:
		return api.Invalid("node_count", "node_count must be 1 on %s; multi-node runs need a cluster", name)
	case nodes > maxNodes:
		return api.Invalid("node_count", "the run needs %d nodes together but cluster %s has max_nodes %d", nodes, name, maxNodes)
	case rules.NodeSize == nil:
		return nil
	}
	size := *rules.NodeSize
	switch {
	case res.GPUs > size.GPUs:
		return api.Invalid("resources.gpus", "no node of %s can ever fit %d GPUs (it has %d); choose a cluster with a larger size", size.Name, res.GPUs, size.GPUs)
	case res.Cores > float64(size.Cores):
		return api.Invalid("resources.cores", "no node of %s can ever fit %g cores (it has %d)", size.Name, res.Cores, size.Cores)
	case res.MemoryGB > size.MemoryGB:
		return api.Invalid("resources.memory_gb", "no node of %s can ever fit %g GiB of memory (it has %g)", size.Name, res.MemoryGB, size.MemoryGB)
	}
	return nil
}
