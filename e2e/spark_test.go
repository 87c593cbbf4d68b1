package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// devSpark is the Spark standalone cluster scripts/dev-spark.sh started
// (CI starts it): SPARK_HOME, SPARK_MASTER and SPARK_MASTER_UI from its env
// file. Without one the Spark tests skip, except in CI where they fail.
func devSpark(t *testing.T) map[string]string {
	dir := os.Getenv("PADDOCK_SPARK_DIR")
	if dir == "" {
		dir = "/var/tmp/paddock-spark"
	}
	data, err := os.ReadFile(filepath.Join(dir, "env"))
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	if err == nil {
		if _, err = sparkMaster(env["SPARK_MASTER_UI"]); err != nil {
			err = &os.PathError{Op: "read the master's status", Path: env["SPARK_MASTER_UI"], Err: err}
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Spark cluster (.ci/run starts one with scripts/dev-spark.sh): %v", err)
		}
		t.Skip("no Spark cluster: as root, `bash scripts/test.sh` starts one (or `bash scripts/dev-spark.sh start`)")
	}
	return env
}

// sparkMasterState is what the tests read of a standalone master's /json/.
type sparkMasterState struct {
	Status       string `json:"status"`
	AliveWorkers int    `json:"aliveworkers"`
	ActiveApps   []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"activeapps"`
	CompletedApps []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"completedapps"`
}

func sparkMaster(ui string) (sparkMasterState, error) {
	var m sparkMasterState
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(ui + "/json/")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// sparkAppActive says whether the master runs an application of this name:
// 1 it does, 0 it does not, -1 the master did not answer.
func sparkAppActive(ui, name string) int {
	m, err := sparkMaster(ui)
	if err != nil {
		return -1
	}
	for _, a := range m.ActiveApps {
		if a.Name == name {
			return 1
		}
	}
	return 0
}

const sparkWordCount = `import os, sys
from pyspark.sql import SparkSession
from paddock import Run
spark = SparkSession.builder.appName(os.environ.get("APP", "wc")).getOrCreate()
lines = spark.sparkContext.textFile(os.path.abspath(sys.argv[1]))
counts = sorted(lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect())
os.makedirs("outputs", exist_ok=True)
with open("outputs/counts.txt", "w") as f:
    f.writelines("%s %d\n" % wc for wc in counts)
Run.get_context().log("distinct_words", len(counts))
print("distinct words:", len(counts))
spark.stop()
`

const sparkSleep = `import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName(sys.argv[1]).getOrCreate()
spark.sparkContext.parallelize(range(2), 2).map(lambda x: time.sleep(600)).collect()
`

// A Spark cluster attached through its head node (a real sshd on loopback,
// a real standalone master and worker): a PySpark word count over a file
// in the snapshot runs in client mode with its driver's output as the log,
// its outputs and metrics come back; a failing job's exit code is kept;
// cancel leaves no application on the master.
func TestSparkTarget(t *testing.T) {
	spark := devSpark(t)
	e := newEnv(t)
	srv := e.up()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	attach := []string{"compute", "attach", "spark", "spark1", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile, "--master", spark["SPARK_MASTER"]}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--spark-home", "/nonexistent/spark"}, 1, "`/nonexistent/spark/bin/spark-submit --version` failed there (is Spark installed? give --spark-home)"},
		{[]string{"--spark-home", spark["SPARK_HOME"], "--master-ui-url", "http://127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))}, 1, "could not read the Spark master's status"},
		{[]string{"--spark-home", "relative/spark"}, 2, "spark_home \"relative/spark\" must be an absolute path"},
		{[]string{"--spark-home", spark["SPARK_HOME"], "--executor-memory", "lots"}, 2, "executor_memory \"lots\" must be a size such as 512m or 4g"},
	} {
		if r := e.run(append(attach, tc.args...)...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "Traceback") {
			t.Errorf("attach %v: exit %d %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := e.run("compute", "attach", "spark", "spark1", "--address", "127.0.0.1", "--username", keyUser, "--private-key-file", sd.keyFile, "--master", "http://x"); r.code != 2 || !strings.Contains(r.stderr, "must be a Spark master URL") {
		t.Errorf("attach with a bad master: exit %d %q", r.code, r.stderr)
	}
	if n := len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))); n != 1 {
		t.Fatalf("failed attaches left %d targets", n)
	}

	c := decodeJSON[api.Compute](t, e.ok(append(attach, "--spark-home", spark["SPARK_HOME"], "--master-ui-url", spark["SPARK_MASTER_UI"],
		"--executor-memory", "512m", "-o", "json")...))
	var st struct {
		Reachable    bool   `json:"reachable"`
		SparkVersion string `json:"spark_version"`
		Workers      int    `json:"workers"`
		WorkerCores  int    `json:"worker_cores"`
	}
	jsonInto(t, c.Status, &st)
	if c.ProvisioningState != api.StateSucceeded || !st.Reachable || !strings.HasPrefix(st.SparkVersion, "3.") || st.Workers != 1 || st.WorkerCores < 1 {
		t.Fatalf("attached: %s %s", c.ProvisioningState, c.Status)
	}
	if list := e.ok("compute", "list"); !strings.Contains(list, "spark1") || !strings.Contains(list, "spark") {
		t.Errorf("compute list does not show the spark target:\n%s", list)
	}

	src := filepath.Join(e.home, "spark-src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "wc.py", sparkWordCount)
	writeFile(t, src, "fail.py", "import sys\nprint('about to fail')\nsys.exit(3)\n")
	writeFile(t, src, "sleep.py", sparkSleep)
	writeFile(t, src, "input.txt", "the quick brown fox\njumps over the lazy dog\nthe end\n")
	// The SDK goes with the source, as a user would ship it to a cluster
	// without it; the driver imports it from beside the script.
	if out, err := exec.Command("cp", "-r", "../sdk/python/paddock", src).CombinedOutput(); err != nil {
		t.Fatalf("copying the SDK into the source: %v %s", err, out)
	}
	if r := e.run("run", "submit", "--compute", "spark1", "--source", src, "--", "sh", "-c", "spark-submit wc.py"); r.code != 2 || !strings.Contains(r.stderr, "starts with the application to spark-submit") {
		t.Errorf("a shell command on a spark target: exit %d %q", r.code, r.stderr)
	}

	start := time.Now()
	if r := e.run("run", "submit", "--compute", "local", "--executor-memory", "1g", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "only for runs on spark targets") {
		t.Errorf("executor settings on the local target: exit %d %q", r.code, r.stderr)
	}
	r := e.runWithin(5*time.Minute, "run", "submit", "--compute", "spark1", "--source", src, "--executor-memory", "600m", "--stream", "--", "wc.py", "input.txt")
	if r.code != 0 || !strings.Contains(r.stdout, "distinct words: 9") {
		t.Fatalf("word count: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("word count on spark (agent install and JVM start included): %s", time.Since(start))
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	wc := e.show(runs[0].ID)
	if strings.Join(wc.Command[:5], " ") != spark["SPARK_HOME"]+"/bin/spark-submit --master "+spark["SPARK_MASTER"]+" --deploy-mode client" ||
		!strings.Contains(strings.Join(wc.Command, " "), "--executor-memory 600m wc.py input.txt") {
		t.Errorf("the run's command: %q", wc.Command)
	}
	if m, ok := wc.Metrics["distinct_words"]; !ok || m.Value != 9 {
		t.Errorf("metrics logged through the SDK: %+v", wc.Metrics)
	}
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", wc.ID, "--to", dl)
	if data, _ := os.ReadFile(filepath.Join(dl, "counts.txt")); !strings.HasPrefix(string(data), "brown 1\ndog 1\nend 1\n") || !strings.Contains(string(data), "the 3\n") {
		t.Errorf("outputs/counts.txt: %q", data)
	}

	if r := e.runWithin(5*time.Minute, "run", "submit", "--compute", "spark1", "--source", src, "--stream", "--", "python3", "fail.py"); r.code != 3 || !strings.Contains(r.stdout, "about to fail") {
		t.Errorf("failing job: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}

	app := "paddock-cancel-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	id := e.submit2("spark1", "--source", src, "--", "sleep.py", app)
	eventually(t, 3*time.Minute, "the application to run on the master", func() bool { return sparkAppActive(spark["SPARK_MASTER_UI"], app) == 1 })
	e.ok("run", "cancel", id)
	if r := e.show(id); r.Status != api.RunCanceled {
		t.Fatalf("cancel: %s", r.Status)
	}
	eventually(t, 30*time.Second, "no application left on the master", func() bool { return sparkAppActive(spark["SPARK_MASTER_UI"], app) == 0 })
	if pids := pidsWith(app); len(pids) > 0 {
		t.Errorf("processes of the cancelled job left: %v", pids)
	}
	// The private key never shows: not in the target, not in the server's log.
	key, _ := os.ReadFile(sd.keyFile)
	keyBody := strings.Split(strings.TrimSpace(string(key)), "\n")[1]
	for _, out := range []string{e.ok("compute", "show", "spark1", "-o", "json"), srv.Logs()} {
		if strings.Contains(out, keyBody) {
			t.Fatal("the private key leaked")
		}
	}
	e.ok("compute", "detach", "spark1")
	eventually(t, 10*time.Second, "~/.paddock-agent to be removed from the head node", func() bool {
		_, err := os.Stat(filepath.Join(homeOf(keyUser), ".paddock-agent"))
		return os.IsNotExist(err)
	})
}
