package e2e

import (
	"context"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The studio's tests drive a real browser: Debian's chromium, headless,
// through the DevTools protocol (chromedp). They skip, naming the package
// that runs them, where chromium is not installed; scripts/deps.sh's
// browser group installs it.

// chromium finds the browser: $PADDOCK_CHROMIUM, else chromium on PATH.
func chromium() string {
	if p := os.Getenv("PADDOCK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artefacts is where the browser tests save their screenshots:
// $PADDOCK_ARTEFACTS/studio, else paddock-artefacts/studio in the
// temporary directory (each run replaces the files of the last).
func artefacts(t *testing.T) string {
	root := os.Getenv("PADDOCK_ARTEFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "paddock-artefacts")
	}
	dir := filepath.Join(root, "studio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless chromium, for one test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the server's URL
	// signedInOnce is set after the first sign-in (whose page is shot).
	signedInOnce bool
}

// newBrowser starts chromium at 1280×900; it is stopped at the end of
// the test.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("chromium is not installed: as root, `bash scripts/deps.sh browser` (or scripts/test.sh) installs it")
	}
	// Its profile and its shared memory files (disable-dev-shm-usage
	// keeps them in $TMPDIR) go in the test's directories, removed after
	// the browser has stopped.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("TMPDIR="+t.TempDir()), chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "en-US"))
	if os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, stop := chromedp.NewContext(alloc)
	t.Cleanup(func() { stop(); stopAlloc() }) // ends the browser process and waits for it
	if err := chromedp.Do(ctx); err != nil {  // start it now, outside any timeout
		t.Fatalf("starting %s: %v", path, err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// do runs steps within 30 s, failing the test on an error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\npage text: %s", err, b.bodyText())
	}
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", js, err)
	}
	return v
}

// bodyText is the page's text, for failure messages.
func (b *browser) bodyText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// open loads a page of the studio.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + path))
}

// sees opens a page of the studio and checks that its main part says
// want.
func (b *browser) sees(path, want string) {
	b.t.Helper()
	b.open(path)
	if got := b.text("main"); !strings.Contains(got, want) {
		b.t.Errorf("%s says %q, want %q in it", path, got, want)
	}
}

// text is an element's text.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(function(){ var e = document.querySelector(%q); return e ? e.innerText : "" })()`, sel))
}

// waitText waits until an element's text matches re.
func (b *browser) waitText(sel string, re *regexp.Regexp, within time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := b.text(sel)
		if re.MatchString(got) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after %s, %s says %q, want %s\npage: %s", within, sel, got, re, b.bodyText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shot saves a PNG of the whole page as name.png among the artefacts.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artefacts(b.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// phone makes the viewport a phone's (390×844), or the desktop's again.
func (b *browser) phone(on bool) {
	b.t.Helper()
	if on {
		b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	} else {
		b.do(chromedp.EmulateViewport(1280, 900))
	}
}

// phoneShot saves a PNG of the page at phone width, and fails the test
// when the page is wider than the phone (what is wider must scroll
// inside its own box, as tables do).
func (b *browser) phoneShot(name string) {
	b.t.Helper()
	b.phone(true)
	defer b.phone(false)
	b.shot(name)
	wide := eval[string](b, `(function(){
	  var w = document.documentElement.clientWidth, out = [];
	  if (document.documentElement.scrollWidth <= w) { return ""; }
	  document.querySelectorAll("body *").forEach(function(e){
	    var r = e.getBoundingClientRect(), pos = getComputedStyle(e).position;
	    if (r.right > w + 1 && (!e.closest(".scroll") || pos === "absolute" || pos === "fixed")) {
	      out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (typeof e.className === "string" && e.className ? "." + e.className : "") + " " + Math.round(r.right) + "px");
	    }
	  });
	  return "the page is " + document.documentElement.scrollWidth + "px wide: " + out.slice(0, 10).join(", ");
	})()`)
	if wide != "" {
		b.t.Errorf("%s: wider than a phone: %s", name, wide)
	}
}

// signIn signs the browser in through a one-time link that `paddock
// studio` prints for the user of token ("" for the admin).
func (b *browser) signIn(e *env, token string) {
	b.t.Helper()
	args := []string{"studio"}
	if token != "" {
		args = append([]string{"--token", token}, args...)
	}
	link := strings.TrimSpace(e.ok(args...))
	if !strings.HasPrefix(link, b.base+"/signin?code=pdl_") {
		b.t.Fatalf("paddock studio printed %q", link)
	}
	b.do(chromedp.Navigate(link), chromedp.WaitVisible("#continue"))
	if !b.signedInOnce {
		b.signedInOnce = true
		b.shot("signin")
	}
	b.do(chromedp.Click("#continue"), chromedp.WaitVisible("header nav"))
}

// signOut signs the browser out.
func (b *browser) signOut() {
	b.t.Helper()
	b.do(chromedp.Click(".who button"), chromedp.WaitVisible("#f-token"))
}
