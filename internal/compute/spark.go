package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/sshclient"
	"golang.org/x/crypto/ssh"
)

// SparkProperties are the properties of a spark target (Azure ML's
// HDInsightCompute): a Spark cluster's head node, reached over SSH, where
// runs are spark-submitted in client mode by an agent Paddock installs
// there (as on a remote target).
type SparkProperties struct {
	Common
	Address  string `json:"address"`
	SSHPort  int    `json:"ssh_port"`
	Username string `json:"username"`
	HostKey  string `json:"host_key,omitempty"`
	// Master is spark-submit's --master (spark://HOST:PORT, yarn, k8s://…,
	// local[N]); empty leaves it to the head node's spark-defaults.conf.
	Master string `json:"master,omitempty"`
	// SparkHome is where Spark is on the head node (spark-submit is
	// SPARK_HOME/bin/spark-submit); empty finds spark-submit on the PATH.
	SparkHome string `json:"spark_home,omitempty"`
	// MasterUIURL is the standalone master's web UI as the head node
	// reaches it, read at attach for the workers and cores (default
	// http://HOST:8080 for a spark://HOST:PORT master).
	MasterUIURL string `json:"master_ui_url,omitempty"`
	// Executor defaults of every run (0 or empty: Spark's own).
	NumExecutors   int    `json:"num_executors,omitempty"`
	ExecutorCores  int    `json:"executor_cores,omitempty"`
	ExecutorMemory string `json:"executor_memory,omitempty"`
}

// SparkStatus is what attach found on the head node and the master.
type SparkStatus struct {
	Reachable    bool   `json:"reachable"`
	SparkVersion string `json:"spark_version"`
	// Workers, WorkerCores and WorkerMemoryGB are the alive workers of a
	// standalone master and what they have together (0 when the master's
	// UI could not be read).
	Workers        int     `json:"workers"`
	WorkerCores    int     `json:"worker_cores"`
	WorkerMemoryGB float64 `json:"worker_memory_gb"`
	// Cores and MemoryGB are the head node's, where the drivers run.
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	Error    string  `json:"error,omitempty"`
}

type spark struct{ attached }

func init() { Register(spark{}) }

func (spark) Type() string              { return "spark" }
func (spark) Origin() Origin            { return Attached }
func (spark) SecretFields() []string    { return sshSecrets() }
func (spark) UpdatableFields() []string { return []string{"description", "tags"} }

var (
	sparkMaster    = regexp.MustCompile(`^(spark://[A-Za-z0-9.:,\[\]-]+|yarn|local(\[([0-9]+|\*)\])?|k8s://https?://[A-Za-z0-9.:\[\]/-]+|mesos://[A-Za-z0-9.:-]+)$`)
	sparkMemory    = regexp.MustCompile(`^[1-9][0-9]{0,6}[kmgtKMGT]$`)
	sparkPathChars = " '\"\\$`;|&\n"
)

func (spark) Normalize(_ context.Context, raw json.RawMessage, secrets map[string]secret.Value, _ Env) (json.RawMessage, error) {
	var p SparkProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	if err := p.Common.validate(); err != nil {
		return nil, err
	}
	if err := checkSSHLogin(&p.Address, &p.SSHPort, p.Username, "the head node's host name or IP address", secrets); err != nil {
		return nil, err
	}
	switch {
	case p.Master != "" && !sparkMaster.MatchString(p.Master):
		return nil, api.Invalid("master", "master %q must be a Spark master URL: spark://HOST:PORT, yarn, local[N], k8s://https://HOST or mesos://HOST:PORT", p.Master)
	case p.SparkHome != "" && (!path.IsAbs(p.SparkHome) || strings.ContainsAny(p.SparkHome, sparkPathChars)):
		return nil, api.Invalid("spark_home", "spark_home %q must be an absolute path without spaces, quotes or shell characters", p.SparkHome)
	case p.ExecutorMemory != "" && !sparkMemory.MatchString(p.ExecutorMemory):
		return nil, api.Invalid("executor_memory", "executor_memory %q must be a size such as 512m or 4g", p.ExecutorMemory)
	}
	if p.MasterUIURL != "" {
		u, err := url.Parse(p.MasterUIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(p.MasterUIURL, sparkPathChars) {
			return nil, api.Invalid("master_ui_url", "master_ui_url %q must be an http or https URL such as http://head:8080", p.MasterUIURL)
		}
	}
	var err error
	if p.NumExecutors, err = intField("num_executors", &p.NumExecutors, 0, 0, 10000); err != nil {
		return nil, err
	}
	if p.ExecutorCores, err = intField("executor_cores", &p.ExecutorCores, 0, 0, 1024); err != nil {
		return nil, err
	}
	return mustJSON(p), nil
}

func (spark) InitialStatus(json.RawMessage) json.RawMessage { return mustJSON(SparkStatus{}) }

// SparkSubmit is the path of spark-submit on the head node.
func (p SparkProperties) SparkSubmit() string {
	if p.SparkHome == "" {
		return "spark-submit"
	}
	return path.Join(p.SparkHome, "bin", "spark-submit")
}

// masterUI is the standalone master's web UI to read at attach, and
// whether it was given (a default that does not answer is no error).
func (p SparkProperties) masterUI() (string, bool) {
	if p.MasterUIURL != "" {
		return strings.TrimRight(p.MasterUIURL, "/"), true
	}
	host, ok := strings.CutPrefix(p.Master, "spark://")
	if !ok || strings.Contains(host, ",") {
		return "", false
	}
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	return "http://" + host + ":8080", false
}

var sparkVersion = regexp.MustCompile(`version ([0-9]+\.[0-9]+\.[0-9]+\S*)`)

// Attach connects to the head node, records its host key, checks that
// spark-submit runs there and reads the master's workers; nothing is stored
// when any of it fails.
func (spark) Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error) {
	var p SparkProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return nil, nil, err
	}
	c, hostKey, err := dialAttached(ctx, props, secrets)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	out, errOut, code, err := sshclient.Run(c, sshclient.Quote(p.SparkSubmit())+" --version", nil)
	m := sparkVersion.FindStringSubmatch(out + errOut)
	if err != nil || code != 0 || m == nil {
		return nil, nil, api.Unavailable("connected to %s, but `%s --version` failed there (is Spark installed? give --spark-home): %s",
			p.Address, p.SparkSubmit(), lastLines(strings.TrimSpace(errOut+" "+errString(err)), 3))
	}
	st := SparkStatus{Reachable: true, SparkVersion: m[1]}
	if host, err := hostFacts(c); err == nil {
		st.Cores, st.MemoryGB = host.Cores, host.MemoryGB
	}
	if ui, given := p.masterUI(); ui != "" {
		if err := readSparkMaster(c, ui, &st); err != nil && given {
			return nil, nil, api.Unavailable("connected to %s, but could not read the Spark master's status at %s/json/ from there: %v", p.Address, ui, err)
		}
	}
	p.HostKey = hostKey
	return mustJSON(p), mustJSON(st), nil
}

// sparkMasterState is the part of a standalone master's /json/ that
// Paddock reads.
type sparkMasterState struct {
	Status      string `json:"status"`
	AliveWorker int    `json:"aliveworkers"`
	Cores       int    `json:"cores"`
	Memory      int    `json:"memory"` // MiB
}

// readSparkMaster reads the master's /json/ from the head node (the UI is
// often reachable only from inside the cluster); an error is Python's last
// line (the reason), not its traceback.
func readSparkMaster(c *ssh.Client, ui string, st *SparkStatus) error {
	out, errOut, code, err := sshclient.Run(c, "python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "+sshclient.Quote(ui+"/json/"), nil)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s", lastLines(strings.TrimSpace(errOut), 1))
	}
	var m sparkMasterState
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return fmt.Errorf("not a Spark master's status: %w", err)
	}
	if m.Status != "ALIVE" {
		return fmt.Errorf("the master is %s, not ALIVE", m.Status)
	}
	st.Workers, st.WorkerCores, st.WorkerMemoryGB = m.AliveWorker, m.Cores, float64(m.Memory*10/1024)/10
	return nil
}

// lastLines keeps the last n lines of s (a JVM's error is its last lines).
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " ")
}

var (
	_ Attacher    = spark{}
	_ Provisioner = spark{}
	_ NodeKind    = spark{}
	_ RunTarget   = spark{}
)

// Provider implements NodeKind: an agent on the head node, installed over
// SSH as on a remote target.
func (spark) Provider(json.RawMessage) string { return "ssh" }

// RunRules implements RunTarget: a run's command is the application and its
// arguments, spark-submitted in client mode so the driver's output is the
// run's log.
func (spark) RunRules(props json.RawMessage, _ *Catalog) (RunRules, error) {
	var p SparkProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return RunRules{}, err
	}
	return RunRules{DefaultCores: 1, Command: p.submitCommand}, nil
}

// override sets the run's own executor settings over the target's.
func (p *SparkProperties) override(o api.SparkOptions) error {
	var err error
	if o.NumExecutors != 0 {
		if p.NumExecutors, err = intField("spark.num_executors", &o.NumExecutors, 0, 1, 10000); err != nil {
			return err
		}
	}
	if o.ExecutorCores != 0 {
		if p.ExecutorCores, err = intField("spark.executor_cores", &o.ExecutorCores, 0, 1, 1024); err != nil {
			return err
		}
	}
	if o.ExecutorMemory != "" {
		if !sparkMemory.MatchString(o.ExecutorMemory) {
			return api.Invalid("spark.executor_memory", "spark.executor_memory %q must be a size such as 512m or 4g", o.ExecutorMemory)
		}
		p.ExecutorMemory = o.ExecutorMemory
	}
	return nil
}

// submitCommand turns a run's command (the application first: wc.py, an
// app.jar; python3 wc.py is taken as wc.py) into the spark-submit command the agent runs on the head node.
func (p SparkProperties) submitCommand(cmd []string, opts *api.SparkOptions) ([]string, error) {
	if opts != nil {
		if err := p.override(*opts); err != nil {
			return nil, err
		}
	}
	cmd = pythonApp(cmd) // spark-submit starts the driver's Python
	if app := cmd[0]; !strings.HasSuffix(app, ".py") && !strings.HasSuffix(app, ".jar") && !strings.HasSuffix(app, ".R") {
		return nil, api.Invalid("command", "on a spark target the command starts with the application to spark-submit (a .py, .jar or .R file, e.g. `-- wc.py ARGS`), not %q", app)
	}
	out := []string{p.SparkSubmit()}
	if p.Master != "" {
		out = append(out, "--master", p.Master)
	}
	out = append(out, "--deploy-mode", "client")
	if p.NumExecutors > 0 {
		out = append(out, "--num-executors", strconv.Itoa(p.NumExecutors))
	}
	if p.ExecutorCores > 0 {
		out = append(out, "--executor-cores", strconv.Itoa(p.ExecutorCores))
	}
	if p.ExecutorMemory != "" {
		out = append(out, "--executor-memory", p.ExecutorMemory)
	}
	return append(out, cmd...), nil
}
