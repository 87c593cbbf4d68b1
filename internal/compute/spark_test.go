package compute_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

func sparkSecrets(pairs ...string) map[string]secret.Value {
	m := map[string]secret.Value{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = secret.New(pairs[i+1])
	}
	return m
}

func TestSparkNormalize(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "spark")
	if k.Origin() != compute.Attached {
		t.Errorf("spark Origin = %v, want Attached", k.Origin())
	}
	pw := sparkSecrets("password", "pw")
	got, err := k.Normalize(t.Context(), json.RawMessage(`{"address":" head ","username":"ml","master":"spark://head:7077","spark_home":"/opt/spark","executor_memory":"2g","num_executors":2,"executor_cores":1}`), pw, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	m := obj(t, got)
	if m["address"] != "head" || m["ssh_port"] != float64(22) || m["master"] != "spark://head:7077" || m["num_executors"] != float64(2) {
		t.Errorf("normalized: %s", got)
	}
	wantIdempotent(t, k, got, pw, testEnv(t))

	base := `"address":"head","username":"ml"`
	for _, tc := range []struct {
		props, field, msg string
		secrets           map[string]secret.Value
	}{
		{`{"username":"ml"}`, "address", "address is required", pw},
		{`{"address":"a b","username":"ml"}`, "address", "must be a host name", pw},
		{`{"address":"head"}`, "username", "username is required", pw},
		{`{` + base + `,"ssh_port":70000}`, "ssh_port", "at most 65535", pw},
		{`{` + base + `,"master":"http://head:7077"}`, "master", "must be a Spark master URL", pw},
		{`{` + base + `,"master":"spark://head;rm -rf /"}`, "master", "must be a Spark master URL", pw},
		{`{` + base + `,"spark_home":"opt/spark"}`, "spark_home", "must be an absolute path", pw},
		{`{` + base + `,"spark_home":"/opt/$(id)"}`, "spark_home", "must be an absolute path", pw},
		{`{` + base + `,"master_ui_url":"ftp://head"}`, "master_ui_url", "must be an http or https URL", pw},
		{`{` + base + `,"executor_memory":"2 gb"}`, "executor_memory", "such as 512m or 4g", pw},
		{`{` + base + `,"num_executors":-1}`, "num_executors", "at least 0", pw},
		{`{` + base + `,"executor_cores":2000}`, "executor_cores", "at most 1024", pw},
		{`{` + base + `}`, "password", "exactly one credential", nil},
		{`{` + base + `}`, "password", "exactly one credential", sparkSecrets("password", "pw", "private_key", "k")},
		{`{` + base + `}`, "private_key_passphrase", "only used with private_key", sparkSecrets("password", "pw", "private_key_passphrase", "x")},
		{`{` + base + `,"nope":1}`, "nope", "", pw},
	} {
		got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), tc.secrets, testEnv(t))
		wantRefused(t, got, err, tc.field, tc.msg)
	}
}

// A run's command on a spark target is the application first; it becomes
// the spark-submit the head node's agent runs, with the target's master,
// client mode and executor defaults.
func TestSparkRunCommand(t *testing.T) {
	t.Parallel()
	rec := store.Compute{Type: "spark", Name: "s", Properties: json.RawMessage(`{"address":"head","username":"ml","master":"spark://head:7077","spark_home":"/opt/spark","executor_memory":"2g","num_executors":2,"executor_cores":1}`)}
	rules, ok, err := compute.RunRulesOf(rec, nil)
	if err != nil || !ok || rules.Command == nil {
		t.Fatalf("RunRulesOf: %+v %v %v", rules, ok, err)
	}
	cmd, err := rules.Command([]string{"wc.py", "in.txt"}, nil)
	want := "/opt/spark/bin/spark-submit --master spark://head:7077 --deploy-mode client --num-executors 2 --executor-cores 1 --executor-memory 2g wc.py in.txt"
	if err != nil || strings.Join(cmd, " ") != want {
		t.Errorf("command = %q, %v; want %q", cmd, err, want)
	}
	// A run's own executor settings win over the target's; each is checked.
	cmd, err = rules.Command([]string{"wc.py"}, &api.SparkOptions{NumExecutors: 4, ExecutorMemory: "1g"})
	want = "/opt/spark/bin/spark-submit --master spark://head:7077 --deploy-mode client --num-executors 4 --executor-cores 1 --executor-memory 1g wc.py"
	if err != nil || strings.Join(cmd, " ") != want {
		t.Errorf("with the run's options: %q, %v; want %q", cmd, err, want)
	}
	for field, o := range map[string]api.SparkOptions{"spark.num_executors": {NumExecutors: -2}, "spark.executor_cores": {ExecutorCores: 5000}, "spark.executor_memory": {ExecutorMemory: "1 GB"}} {
		_, err := rules.Command([]string{"wc.py"}, &o)
		wantInvalid(t, err, field)
	}
	rec.Properties = json.RawMessage(`{"address":"head","username":"ml"}`)
	rules, _, _ = compute.RunRulesOf(rec, nil)
	if cmd, _ := rules.Command([]string{"app.jar"}, nil); !slices.Equal(cmd, []string{"spark-submit", "--deploy-mode", "client", "app.jar"}) {
		t.Errorf("without master or spark_home: %q", cmd)
	}
	if cmd, _ := rules.Command([]string{"python3", "wc.py", "x"}, nil); !slices.Equal(cmd, []string{"spark-submit", "--deploy-mode", "client", "wc.py", "x"}) {
		t.Errorf("python3 wc.py (the SDK's command): %q", cmd)
	}
	for _, bad := range [][]string{{"python3", "-c", "print(1)"}, {"python3"}, {"sh", "-c", "spark-submit x"}} {
		if _, err := rules.Command(bad, nil); err == nil {
			t.Errorf("%q: no error", bad)
		} else {
			wantInvalid(t, err, "command")
		}
	}
}
