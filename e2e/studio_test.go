package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/paddock-ml/paddock/api"
)

// The studio in a browser, as a person uses it: sign in with the link
// `paddock studio` prints, create a cluster through its form (a field
// error first), watch its node count go 0 → 1 → 0 as a run from the CLI
// comes and goes, at desktop and at phone width. Screenshots of each page
// are saved among the artefacts.
func TestStudioClusterForm(t *testing.T) {
	t.Parallel()
	e, _, b := studioAsAdmin(t)
	b.waitText("h1", regexp.MustCompile(`Compute targets`), 10*time.Second)
	b.shot("computes")

	// The form: min_nodes > max_nodes is refused, the server's message
	// beside the field, the form kept as filled.
	b.open("/ws/default/create/cluster")
	b.do(chromedp.SendKeys("#f-name", "cpu"), chromedp.SetValue("#f-vm_size", "STANDARD_D2_V2"),
		chromedp.SendKeys("#f-min_nodes", "3"), chromedp.SendKeys("#f-max_nodes", "2"),
		chromedp.SendKeys("#f-idle_seconds_before_scaledown", "2"), chromedp.Click(".submit button"),
		chromedp.WaitVisible("#e-min_nodes"))
	if got := b.text("#e-min_nodes"); got != "min_nodes (3) must not be more than max_nodes (2)" {
		t.Errorf("the error beside min_nodes says %q", got)
	}
	if got := eval[string](b, `document.querySelector("#f-name").value + " " + document.querySelector("#f-vm_size").value`); got != "cpu STANDARD_D2_V2" {
		t.Errorf("the form was not kept as filled: %q", got)
	}
	if eval[string](b, `document.querySelector("#f-min_nodes").getAttribute("aria-invalid")`) != "true" {
		t.Error("the refused input is not marked aria-invalid")
	}
	b.shot("create-cluster-error")
	b.do(chromedp.SetValue("#f-min_nodes", "0"), chromedp.Click(".submit button"), chromedp.WaitVisible("#summary"))
	b.waitText("#summary", regexp.MustCompile(`Succeeded`), 20*time.Second)
	if got := b.text("h1"); !strings.HasPrefix(got, "cpu") {
		t.Fatalf("after creating, the page's title is %q", got)
	}

	// A run from the CLI grows a node; the page sees it come and go
	// without a reload.
	id := e.submit2("cpu", "--", "sh", "-c", "sleep 3")
	b.waitText("#node-total", regexp.MustCompile(`^1 node$`), 40*time.Second)
	b.waitText("#nodes", regexp.MustCompile(`running|preparing|idle`), 10*time.Second)
	b.shot("compute-page")
	b.phoneShot("compute-page-phone")
	if r := e.waitRun(id); r.Status != api.RunCompleted {
		t.Fatalf("the run: %+v", r)
	}
	b.waitText("#node-total", regexp.MustCompile(`^0 nodes$`), 40*time.Second)
	if n := eval[int](b, `document.querySelectorAll("#timeline svg polyline").length`); n != 1 {
		t.Errorf("the node timeline has %d lines, want 1", n)
	}
	if got := b.text("#timeline details"); !strings.Contains(got, "Scale events") {
		t.Errorf("no scale events: %q", got)
	}
	b.do(chromedp.Click("#timeline summary"))
	if got := b.text("#timeline ol"); !strings.Contains(got, "0 → 1 nodes") || !strings.Contains(got, "1 → 0 nodes") {
		t.Errorf("scale events %q, want 0 → 1 and 1 → 0", got)
	}
	b.shot("compute-page-scaled-down")

	// The list follows node counts too, and reads at phone width.
	b.open("/ws/default/computes")
	if got := b.text("#c-cpu"); !strings.Contains(got, "STANDARD_D2_V2") || !strings.Contains(got, "0–2") {
		t.Errorf("the list's row of cpu: %q", got)
	}
	b.phoneShot("computes-phone")

	// What the studio did is in the audit log, as the API's calls are.
	var entries []api.AuditEntry
	json.Unmarshal([]byte(e.ok("audit", "list", "--action", "compute.create", "-o", "json")), &entries)
	var outcomes []string
	for _, en := range entries {
		if en.Target == "computes/cpu" {
			outcomes = append(outcomes, en.Outcome)
		}
	}
	if !slices.Equal(outcomes, []string{"failed", "ok"}) {
		t.Errorf("audit entries of creating cpu: %v (%+v), want failed then ok", outcomes, entries)
	}

	// Delete, after typing its name.
	b.open("/ws/default/computes/cpu")
	b.do(chromedp.Click(`a.button.danger`), chromedp.WaitVisible("#f-confirm"))
	b.shot("delete-confirm")
	b.do(chromedp.SendKeys("#f-confirm", "cpu"), chromedp.Click(".submit button"), chromedp.WaitVisible("#computes"))
	eventually(t, 20*time.Second, "cpu gone from the live list", func() bool { return eval[bool](b, `!document.getElementById("c-cpu")`) })
	if r := e.run("compute", "show", "cpu"); r.code != 3 {
		t.Errorf("after delete on its page, compute show cpu: exit %d %s", r.code, r.stdout)
	}
}

// studioAsAdmin starts a server and a browser signed in to its studio as
// the admin.
func studioAsAdmin(t *testing.T) (*env, *server, *browser) {
	e := newEnv(t)
	s := e.up()
	b := newBrowser(t, s.url)
	b.signIn(e, "")
	return e, s, b
}

// studioTrain prints a line with the time it printed it (ns) every 0.2 s,
// posts a loss for each step, and writes an output.
const studioTrain = `import json, os, sys, time, urllib.request
time.sleep(float(sys.argv[1]))
url = "%s/api/v1/workspaces/%s/runs/%s/metrics" % (os.environ["PADDOCK_API_URL"], os.environ["PADDOCK_WORKSPACE"], os.environ["PADDOCK_RUN_ID"])
for step in range(1, 21):
    print("step %d t=%d" % (step, time.time_ns()), flush=True)
    req = urllib.request.Request(url, data=json.dumps({"name": "loss", "value": 2.0 / step, "step": step}).encode(),
        headers={"Authorization": "Bearer " + os.environ["PADDOCK_RUN_TOKEN"], "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    time.sleep(0.2)
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
print("done")
`

// lineSeen records, in the page, when each log line reached the DOM.
const lineSeen = `(function(){
  window.seen = [];
  new MutationObserver(function(ms){
    var now = Date.now();
    ms.forEach(function(m){ m.addedNodes.forEach(function(n){
      if (n.nodeType === 1 && n.classList.contains("ln")) { window.seen.push([n.textContent, now]); }
    }); });
  }).observe(document.getElementById("log"), {childList: true});
  return true;
})()`

// A run's page: its first log line appears within a second of being
// printed, and the others follow; its metric is charted, its output
// listed; a long log shows its tail and loads older lines on scroll; a
// run is cancelled from its page.
func TestStudioRunPage(t *testing.T) {
	t.Parallel()
	e, s, b := studioAsAdmin(t)

	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", studioTrain)
	id := e.submit("--source", src, "--experiment", "mnist", "--", "python3", "train.py", "4")
	b.open("/ws/default/runs/" + id)
	if !eval[bool](b, lineSeen) {
		t.Fatal("could not watch the log")
	}
	b.waitText("#run-head .badge", regexp.MustCompile(`^Completed$`), 60*time.Second)
	b.waitText("#log", regexp.MustCompile(`done`), 10*time.Second)
	var seen [][2]any
	raw := eval[[]any](b, `window.seen`)
	for _, x := range raw {
		pair := x.([]any)
		seen = append(seen, [2]any{pair[0], pair[1]})
	}
	stamp := regexp.MustCompile(`^step (\d+) t=(\d+)$`)
	var lat []float64
	for _, p := range seen {
		m := stamp.FindStringSubmatch(p[0].(string))
		if m == nil {
			continue
		}
		var printed int64
		fmt.Sscan(m[2], &printed)
		lat = append(lat, p[1].(float64)-float64(printed)/1e6)
	}
	if len(lat) != 20 {
		t.Fatalf("the page saw %d of the 20 step lines arrive live: %v", len(lat), seen)
	}
	if lat[0] > 1000 {
		t.Errorf("the first line reached the page %.0f ms after it was printed, want < 1 s", lat[0])
	}
	sorted := slices.Clone(lat)
	sort.Float64s(sorted)
	t.Logf("log line printed → in the page's DOM: first %.0f ms, p50 %.0f ms, p90 %.0f ms, max %.0f ms (%d lines)",
		lat[0], sorted[len(sorted)/2], sorted[len(sorted)*9/10], sorted[len(sorted)-1], len(sorted))
	if p50 := sorted[len(sorted)/2]; p50 > 300 {
		t.Errorf("log lines reached the page %.0f ms after they were printed (p50), want < 300 ms", p50)
	}
	if b.text("#charts figcaption") != "loss" || eval[int](b, `document.querySelectorAll("#charts svg polyline").length`) != 1 {
		t.Errorf("the metrics: %q", b.text("#charts"))
	}
	b.waitText("#outputs", regexp.MustCompile(`model\.txt`), 10*time.Second)
	if got := eval[string](b, `document.querySelector("#outputs a[href$='/outputs/model.txt']").getAttribute("href")`); got != "/ws/default/runs/"+id+"/outputs/model.txt" {
		t.Errorf("the output's link: %q", got)
	}
	// Without a session an output is not served: the browser is sent to
	// sign in.
	if code, body := httpGet(t, s.url+"/ws/default/runs/"+id+"/outputs/model.txt", ""); strings.Contains(body, "weights") || !strings.Contains(body, "Sign in") {
		t.Errorf("an output without a session: %d %q", code, body)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("log").scrollTop = document.getElementById("log").scrollHeight`))
	b.shot("run-page")
	b.phoneShot("run-page-phone")

	// A long log: the page holds its tail; scrolling up loads older lines.
	long := e.submit("--", "sh", "-c", "seq 1 1200")
	e.waitRun(long)
	b.open("/ws/default/runs/" + long)
	if n := eval[int](b, `document.querySelectorAll("#log .ln").length`); n != 200 {
		t.Errorf("the page of a 1200-line log shows %d lines, want its last 200", n)
	}
	if got := b.text("#log .ln:last-child"); got != "1200" {
		t.Errorf("the last line shown is %q", got)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("log").scrollTop = 0`),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#log .ln").length === 700`, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("log").scrollTop = 0`),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#log .ln").length === 1200`, chromedp.WithPollingTimeout(10*time.Second)))
	if got := b.text("#log .ln"); got != "1" {
		t.Errorf("after scrolling to the top the first line is %q", got)
	}

	// Cancel from the page.
	slow := e.submit("--", "sleep", "120")
	b.open("/ws/default/runs/" + slow)
	b.waitText("#run-head .badge", regexp.MustCompile(`^Running$`), 30*time.Second)
	b.do(chromedp.Click("#cancel"))
	b.waitText("#run-head .badge", regexp.MustCompile(`^Canceled$`), 20*time.Second)
	if r := e.show(slow); r.Status != api.RunCanceled {
		t.Errorf("after cancel on the page the run is %s", r.Status)
	}
	b.shot("run-canceled")

	// The runs list, filtered.
	b.open("/ws/default/runs?experiment=mnist")
	if got := b.text("#runs tbody"); !strings.Contains(got, id) || strings.Contains(got, long) {
		t.Errorf("runs of experiment mnist: %q", got)
	}
	b.open("/ws/default/runs")
	b.shot("runs")
}

// What a user sees is what the API lets them: another user's instance
// is not listed nor shown; a Reader has no create buttons; a Compute
// Operator has no runs. Each signs out and the next signs in.
func TestStudioRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	tok := map[string]string{}
	for _, u := range [][2]string{{"ana", "contributor"}, {"bob", "contributor"}, {"rita", "reader"}, {"otto", "compute-operator"}} {
		tok[u[0]] = strings.TrimSpace(e.ok("user", "add", u[0], "--role", u[1]))
	}
	e.ok("--token", tok["ana"], "compute", "create", "instance", "ana-box", "--vm-size", "STANDARD_D2_V2", "--no-wait")
	b := newBrowser(t, s.url)

	b.signIn(e, tok["ana"])
	if got := b.text("#computes"); !strings.Contains(got, "ana-box") {
		t.Errorf("ana does not see her instance: %q", got)
	}
	b.signOut()

	b.signIn(e, tok["bob"])
	if got := b.text("#computes"); strings.Contains(got, "ana-box") || !strings.Contains(got, "local") {
		t.Errorf("bob's compute list: %q", got)
	}
	b.sees("/ws/default/computes/ana-box", "Not found") // bob, ana's instance
	b.shot("other-users-instance")
	b.signOut()

	b.signIn(e, tok["rita"])
	if n := eval[int](b, `document.querySelectorAll(".actions a.button").length`); n != 0 {
		t.Errorf("a Reader sees %d create buttons", n)
	}
	if got := b.text("header nav"); !strings.Contains(got, "Runs") || strings.Contains(got, "Users") {
		t.Errorf("a Reader's sections: %q", got)
	}
	b.sees("/ws/default/create/cluster", "does not allow compute.write")
	b.shot("reader-refused")
	b.signOut()

	b.signIn(e, tok["otto"])
	if got := b.text("header nav"); strings.Contains(got, "Runs") {
		t.Errorf("a Compute Operator's sections: %q", got)
	}
	if got := b.text("#computes"); !strings.Contains(got, "ana-box") {
		t.Errorf("a Compute Operator does not see every instance: %q", got)
	}
	b.sees("/ws/default/runs", "does not allow run.read")
	b.sees("/ws/default/quotas", "ana-box") // her running instance's cores
	b.shot("quotas")
	b.signOut()

	// The admin adds a user; the token is shown once.
	b.signIn(e, "")
	b.open("/ws/default/users")
	b.do(chromedp.SendKeys("#f-name", "cy"), chromedp.SetValue("#f-role", "Reader"), chromedp.Click(".submit button"),
		chromedp.WaitVisible("#new-token"))
	cy := b.text("#new-token")
	if r := e.run("--token", cy, "run", "list"); r.code != 0 {
		t.Errorf("the token the page showed does not work: %q", r.stderr)
	}
	b.shot("users")
	// A used sign-in link does not work again.
	link := strings.TrimSpace(e.ok("studio"))
	b.signOut()
	b.do(chromedp.Navigate(link), chromedp.Click("#continue"), chromedp.WaitVisible("header nav"))
	b.signOut()
	b.do(chromedp.Navigate(link), chromedp.Click("#continue"), chromedp.WaitVisible(".alert"))
	if got := b.text(".alert"); !strings.Contains(got, "used already") {
		t.Errorf("a link used twice: %q", got)
	}
}
