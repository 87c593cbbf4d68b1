package compute_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
)

// writeSizes writes the admin file and sets its mtime explicitly, so that
// two writes in the same second still look like a change.
func writeSizes(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func newCatalog(t *testing.T, content string) (*compute.Catalog, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), compute.SizesFile)
	if content != "" {
		writeSizes(t, path, content, time.Now().Add(-time.Hour))
	}
	c, err := compute.NewCatalog(path)
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	return c, path
}

func TestCatalogBuiltins(t *testing.T) {
	t.Parallel()
	c, _ := newCatalog(t, "")
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	tests := []struct {
		lookup string
		want   api.Size
	}{
		{"STANDARD_D2_V2", api.Size{Name: "STANDARD_D2_V2", Cores: 2, MemoryGB: 7, Family: "standardDv2Family", Source: "builtin"}},
		{"standard_d2_v2", api.Size{Name: "STANDARD_D2_V2", Cores: 2, MemoryGB: 7, Family: "standardDv2Family", Source: "builtin"}},
		{"Standard_D3_v2", api.Size{Name: "STANDARD_D3_V2", Cores: 4, MemoryGB: 14, Family: "standardDv2Family", Source: "builtin"}},
		{"STANDARD_DS3_V2", api.Size{Name: "STANDARD_DS3_V2", Cores: 4, MemoryGB: 14, Family: "standardDSv2Family", Source: "builtin"}},
		{"STANDARD_NC6", api.Size{Name: "STANDARD_NC6", Cores: 6, MemoryGB: 56, GPUs: 1, Family: "standardNCFamily", Source: "builtin"}},
		{"standard_nc6", api.Size{Name: "STANDARD_NC6", Cores: 6, MemoryGB: 56, GPUs: 1, Family: "standardNCFamily", Source: "builtin"}},
		{"STANDARD_D1_V2", api.Size{Name: "STANDARD_D1_V2", Cores: 1, MemoryGB: 3.5, Family: "standardDv2Family", Source: "builtin"}},
	}
	for _, tc := range tests {
		t.Run(tc.lookup, func(t *testing.T) {
			t.Parallel()
			got, ok := c.Find(tc.lookup)
			if !ok {
				t.Fatalf("Find(%q) found nothing", tc.lookup)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Find(%q) mismatch (-want +got):\n%s", tc.lookup, d)
			}
		})
	}
	for _, name := range []string{"", "STANDARD_D2", "STANDARD_D2_V2 ", "gpu_box"} {
		if s, ok := c.Find(name); ok {
			t.Errorf("Find(%q) = %+v, want not found", name, s)
		}
	}
	all := c.All()
	for _, s := range all {
		if s.Source != "builtin" || s.Cores < 1 || s.MemoryGB <= 0 || s.Family == "" {
			t.Errorf("builtin size %+v: want Source builtin, cores, memory and a family", s)
		}
	}
	// All returns a copy: changing it does not change the catalog.
	all[0].Cores = 999
	if again := c.All(); again[0].Cores == 999 {
		t.Error("All() returned the catalog's own slice")
	}
}

// All is documented as sorted by name, with or without an admin file.
func TestCatalogAllSortedWithoutFile(t *testing.T) {
	t.Parallel()
	c, _ := newCatalog(t, "")
	if all := c.All(); !sortedByName(all) {
		t.Errorf("All() not sorted by name: %v", names(all))
	}
}

func sortedByName(sizes []api.Size) bool {
	return slices.IsSortedFunc(sizes, func(a, b api.Size) int { return strings.Compare(a.Name, b.Name) })
}

func names(sizes []api.Size) []string {
	out := make([]string, len(sizes))
	for i, s := range sizes {
		out[i] = s.Name
	}
	return out
}

func TestCatalogAdminFile(t *testing.T) {
	t.Parallel()
	c, path := newCatalog(t, `
sizes:
  - name: GPU_BOX
    cores: 32
    memory_gb: 256
    gpus: 4
  - name: tiny
    cores: 1
    memory_gb: 0.5
    family: tinyFamily
`)
	tests := []struct {
		lookup string
		want   api.Size
	}{
		{"GPU_BOX", api.Size{Name: "GPU_BOX", Cores: 32, MemoryGB: 256, GPUs: 4, Family: "custom", Source: path}},
		{"gpu_box", api.Size{Name: "GPU_BOX", Cores: 32, MemoryGB: 256, GPUs: 4, Family: "custom", Source: path}},
		{"TINY", api.Size{Name: "tiny", Cores: 1, MemoryGB: 0.5, Family: "tinyFamily", Source: path}},
		{"STANDARD_NC6", api.Size{Name: "STANDARD_NC6", Cores: 6, MemoryGB: 56, GPUs: 1, Family: "standardNCFamily", Source: "builtin"}},
	}
	for _, tc := range tests {
		got, ok := c.Find(tc.lookup)
		if !ok {
			t.Errorf("Find(%q) found nothing", tc.lookup)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("Find(%q) mismatch (-want +got):\n%s", tc.lookup, d)
		}
	}
	all := c.All()
	if !sortedByName(all) {
		t.Errorf("All() not sorted by name: %v", names(all))
	}
	base, _ := newCatalog(t, "")
	if got, want := len(all), len(base.All())+2; got != want {
		t.Errorf("len(All()) = %d, want %d", got, want)
	}

	// An admin size is usable as a vm_size, in its own spelling.
	props, err := mustKind(t, "instance").Normalize(t.Context(), []byte(`{"vm_size":"gpu_box"}`), nil,
		compute.Env{Sizes: c, User: "alice"})
	if err != nil {
		t.Fatalf("Normalize with an admin size: %v", err)
	}
	got := obj(t, props)
	if got["vm_size"] != "GPU_BOX" || got["max_concurrent_runs"] != 32.0 {
		t.Errorf("Normalize = %s, want vm_size GPU_BOX and 32 concurrent runs", props)
	}
}

func TestCatalogEmptyFile(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"\n", "sizes: []\n", "# nothing yet\n"} {
		c, _ := newCatalog(t, content)
		if len(c.All()) == 0 || c.Err() != nil {
			t.Errorf("file %q: %d sizes, Err %v; want the builtins and no error", content, len(c.All()), c.Err())
		}
	}
}

func TestNewCatalogInvalidFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, content, msg string
	}{
		{"missing name", "sizes:\n  - cores: 2\n    memory_gb: 4\n", "name is required"},
		{"duplicate of a builtin", "sizes:\n  - name: STANDARD_D2_V2\n    cores: 2\n    memory_gb: 7\n", "defined twice"},
		{"duplicate of a builtin in another case", "sizes:\n  - name: standard_nc6\n    cores: 6\n    memory_gb: 56\n", "defined twice"},
		{"duplicate within the file", "sizes:\n  - name: BOX\n    cores: 2\n    memory_gb: 4\n  - name: box\n    cores: 4\n    memory_gb: 8\n", "defined twice"},
		{"cores 0", "sizes:\n  - name: BOX\n    cores: 0\n    memory_gb: 4\n", "cores"},
		{"cores missing", "sizes:\n  - name: BOX\n    memory_gb: 4\n", "cores"},
		{"memory 0", "sizes:\n  - name: BOX\n    cores: 2\n    memory_gb: 0\n", "memory_gb"},
		{"negative gpus", "sizes:\n  - name: BOX\n    cores: 2\n    memory_gb: 4\n    gpus: -1\n", "gpus"},
		{"unknown key in a size", "sizes:\n  - name: BOX\n    cores: 2\n    memory_gb: 4\n    ram: 4\n", "ram"},
		{"unknown top-level key", "size:\n  - name: BOX\n    cores: 2\n    memory_gb: 4\n", "size"},
		{"cores not a number", "sizes:\n  - name: BOX\n    cores: many\n    memory_gb: 4\n", "cores"},
		{"not YAML", "sizes: [\n", ""},
		{"sizes not a list", "sizes: GPU_BOX\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), compute.SizesFile)
			writeSizes(t, path, tc.content, time.Now())
			_, err := compute.NewCatalog(path)
			if err == nil {
				t.Fatalf("NewCatalog accepted:\n%s", tc.content)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestCatalogReloadsChangedFile(t *testing.T) {
	t.Parallel()
	c, path := newCatalog(t, "")
	t0 := time.Now().Add(-time.Hour)
	cores := func(name string) int {
		t.Helper()
		s, ok := c.Find(name)
		if !ok {
			return -1
		}
		return s.Cores
	}
	steps := []struct {
		desc    string
		content string // "" removes the file
		mtime   time.Time
		wantErr bool
		want    map[string]int // size -> cores; -1 absent
	}{
		{"file appears", "sizes:\n  - name: GPU_BOX\n    cores: 8\n    memory_gb: 64\n", t0,
			false, map[string]int{"GPU_BOX": 8, "STANDARD_D2_V2": 2}},
		{"cores edited, same length, one second later", "sizes:\n  - name: GPU_BOX\n    cores: 9\n    memory_gb: 64\n", t0.Add(time.Second),
			false, map[string]int{"GPU_BOX": 9}},
		{"size renamed", "sizes:\n  - name: GPU_BIG\n    cores: 16\n    memory_gb: 64\n", t0.Add(2 * time.Second),
			false, map[string]int{"GPU_BOX": -1, "GPU_BIG": 16}},
		{"file turns invalid: last good catalog kept", "sizes:\n  - name: GPU_BIG\n    cores: 0\n    memory_gb: 64\n", t0.Add(3 * time.Second),
			true, map[string]int{"GPU_BIG": 16}},
		{"file fixed", "sizes:\n  - name: GPU_BIG\n    cores: 32\n    memory_gb: 64\n", t0.Add(4 * time.Second),
			false, map[string]int{"GPU_BIG": 32}},
		{"file removed: builtins only", "", time.Time{},
			false, map[string]int{"GPU_BIG": -1, "STANDARD_NC6": 6}},
	}
	// Sequential on purpose: each step builds on the catalog the last left.
	for _, st := range steps {
		if st.content == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else {
			writeSizes(t, path, st.content, st.mtime)
		}
		if err := c.Err(); (err != nil) != st.wantErr {
			t.Errorf("%s: Err() = %v, want error %v", st.desc, err, st.wantErr)
		}
		for name, want := range st.want {
			if got := cores(name); got != want {
				t.Errorf("%s: cores of %s = %d, want %d", st.desc, name, got, want)
			}
		}
	}
}

// The catalog is read by every request while the admin edits the file.
func TestCatalogConcurrentUse(t *testing.T) {
	t.Parallel()
	c, path := newCatalog(t, "sizes:\n  - name: GPU_BOX\n    cores: 8\n    memory_gb: 64\n")
	t0 := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, ok := c.Find("STANDARD_D2_V2"); !ok {
					t.Error("builtin size missing during a reload")
					return
				}
				_ = c.All()
				_ = c.Err()
			}
		})
	}
	for i := range 20 {
		writeSizes(t, path, "sizes:\n  - name: GPU_BOX\n    cores: 8\n    memory_gb: 64\n", t0.Add(time.Duration(i)*time.Second))
	}
	wg.Wait()
}

// NewCatalog still returns a usable catalog with an invalid file; its
// builtins should be marked "builtin" like any other catalog's.
func TestNewCatalogInvalidFileFallback(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), compute.SizesFile)
	writeSizes(t, path, "sizes:\n  - cores: 2\n", time.Now())
	c, err := compute.NewCatalog(path)
	if err == nil {
		t.Fatal("NewCatalog accepted an invalid file")
	}
	all := c.All()
	if len(all) == 0 {
		t.Fatal("no sizes at all")
	}
	for _, s := range all {
		if s.Source != "builtin" {
			t.Errorf("size %s has Source %q, want builtin", s.Name, s.Source)
		}
	}
}

// A file that turns invalid while the server runs is reported in the log
// once (not at every read), and its repair once.
func TestCatalogLogsAnInvalidEditOnce(t *testing.T) {
	t.Parallel()
	c, path := newCatalog(t, "sizes:\n  - name: GPU_BOX\n    cores: 8\n    memory_gb: 64\n")
	var logs bytes.Buffer
	c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	t0 := time.Now().Add(-time.Hour)
	writeSizes(t, path, "sizes:\n  - name: GPU_BOX\n    cores: 0\n    memory_gb: 64\n", t0.Add(time.Second))
	for range 5 {
		if _, ok := c.Find("GPU_BOX"); !ok {
			t.Fatal("the last good catalog was dropped")
		}
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "cores must be at least 1") {
		t.Errorf("Err() = %v", err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "cores must be at least 1") {
		t.Errorf("want one warning naming the problem, got:\n%s", logs.String())
	}
	writeSizes(t, path, "sizes:\n  - name: GPU_BOX\n    cores: 4\n    memory_gb: 64\n", t0.Add(2*time.Second))
	c.All()
	c.All()
	if n := strings.Count(logs.String(), "the size file is valid again"); n != 1 || c.Err() != nil {
		t.Errorf("after the repair: Err %v, log:\n%s", c.Err(), logs.String())
	}
}
