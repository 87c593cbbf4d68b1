package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// `compute attach batch` is Azure ML's name for what Paddock calls slurm:
// it says so, then creates a slurm target with the same flags.
func TestAttachBatchCreatesASlurmTarget(t *testing.T) {
	var got api.ComputeCreate
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/computes") {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Invalid("address", "stop here")})
	}))
	defer srv.Close()
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	code, _, stderr := runMain("--server", srv.URL, "--token", "t", "compute", "attach", "batch", "hpc",
		"--address", "login.hpc", "--username", "ml", "--password-file", pw, "--partition", "debug", "--no-wait")
	if code != 2 || !strings.Contains(stderr, "note: batch is Azure ML's name; Paddock creates a slurm target") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var props map[string]any
	json.Unmarshal(got.Properties, &props)
	if got.Type != "slurm" || got.Name != "hpc" || props["partition"] != "debug" || props["address"] != "login.hpc" {
		t.Fatalf("batch sent %+v (properties %v), want a slurm target", got, props)
	}
}

// `compute attach adla` exists only to say the service is gone: one
// sentence, exit 2, whatever flags it is given, and no call to a server.
func TestAttachAdlaSaysItWasRetired(t *testing.T) {
	for _, args := range [][]string{{"adla", "x"}, {"adla", "x", "--account-name", "a"}, {"adla"}} {
		code, stdout, stderr := runMain(append([]string{"--server", "http://127.0.0.1:1", "compute", "attach"}, args...)...)
		want := "error: Azure Data Lake Analytics was retired by Microsoft in February 2024, so Paddock does not offer it; run U-SQL work as a Spark or Python job instead\n"
		if code != 2 || stderr != want || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}
