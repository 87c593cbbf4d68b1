package compute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"sigs.k8s.io/yaml"
)

// builtinSizes are Azure-compatible size names, so scripts written for
// Azure ML keep their vm_size.
var builtinSizes = []api.Size{
	{Name: "STANDARD_D1_V2", Cores: 1, MemoryGB: 3.5, Family: "standardDv2Family"},
	{Name: "STANDARD_D2_V2", Cores: 2, MemoryGB: 7, Family: "standardDv2Family"},
	{Name: "STANDARD_D3_V2", Cores: 4, MemoryGB: 14, Family: "standardDv2Family"},
	{Name: "STANDARD_D4_V2", Cores: 8, MemoryGB: 28, Family: "standardDv2Family"},
	{Name: "STANDARD_D5_V2", Cores: 16, MemoryGB: 56, Family: "standardDv2Family"},
	{Name: "STANDARD_D11_V2", Cores: 2, MemoryGB: 14, Family: "standardDv2Family"},
	{Name: "STANDARD_D12_V2", Cores: 4, MemoryGB: 28, Family: "standardDv2Family"},
	{Name: "STANDARD_DS1_V2", Cores: 1, MemoryGB: 3.5, Family: "standardDSv2Family"},
	{Name: "STANDARD_DS2_V2", Cores: 2, MemoryGB: 7, Family: "standardDSv2Family"},
	{Name: "STANDARD_DS3_V2", Cores: 4, MemoryGB: 14, Family: "standardDSv2Family"},
	{Name: "STANDARD_DS4_V2", Cores: 8, MemoryGB: 28, Family: "standardDSv2Family"},
	{Name: "STANDARD_DS11_V2", Cores: 2, MemoryGB: 14, Family: "standardDSv2Family"},
	{Name: "STANDARD_DS12_V2", Cores: 4, MemoryGB: 28, Family: "standardDSv2Family"},
	{Name: "STANDARD_F2S_V2", Cores: 2, MemoryGB: 4, Family: "standardFSv2Family"},
	{Name: "STANDARD_F4S_V2", Cores: 4, MemoryGB: 8, Family: "standardFSv2Family"},
	{Name: "STANDARD_E4S_V3", Cores: 4, MemoryGB: 32, Family: "standardESv3Family"},
	{Name: "STANDARD_NC6", Cores: 6, MemoryGB: 56, GPUs: 1, Family: "standardNCFamily"},
	{Name: "STANDARD_NC12", Cores: 12, MemoryGB: 112, GPUs: 2, Family: "standardNCFamily"},
	{Name: "STANDARD_NC24", Cores: 24, MemoryGB: 224, GPUs: 4, Family: "standardNCFamily"},
	{Name: "STANDARD_NC6S_V3", Cores: 6, MemoryGB: 112, GPUs: 1, Family: "standardNCSv3Family"},
	{Name: "STANDARD_NC24S_V3", Cores: 24, MemoryGB: 448, GPUs: 4, Family: "standardNCSv3Family"},
	{Name: "STANDARD_NC24ADS_A100_V4", Cores: 24, MemoryGB: 220, GPUs: 1, Family: "standardNCADSA100v4Family"},
	{Name: "STANDARD_ND96ASR_V4", Cores: 96, MemoryGB: 900, GPUs: 8, Family: "standardNDASv4Family"},
}

// SizesFile is the name, inside the data dir, of the file where an admin
// adds sizes. Its shape:
//
//	sizes:
//	  - name: GPU_BOX
//	    cores: 32
//	    memory_gb: 256
//	    gpus: 4
//	    family: gpuBoxFamily   # optional; defaults to "custom"
const SizesFile = "sizes.yaml"

// Catalog is the size catalog: the built-in sizes plus an admin's file,
// re-read whenever the file changes. Names match case-insensitively.
type Catalog struct {
	path string
	// Log, when set, hears of each reload of the admin's file: a file that
	// turned invalid (a warning naming the problem) and one fixed again.
	Log *slog.Logger

	mu      sync.Mutex
	modTime time.Time // of the file the catalog was loaded from
	badMod  time.Time // of an invalid file already reported
	sizes   []api.Size
	loadErr error
}

// NewCatalog returns a catalog backed by the admin file at path (which may
// not exist). An invalid file is an error at start so the admin sees it.
func NewCatalog(path string) (*Catalog, error) {
	c := &Catalog{path: path}
	c.refresh()
	return c, c.loadErr
}

// refresh reloads the admin file when its modification time changed. A file
// that turns invalid while running keeps the last good catalog (and the
// error is reported by Err).
func (c *Catalog) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(c.path)
	var mod time.Time
	if err == nil {
		mod = fi.ModTime()
	} else if !errors.Is(err, os.ErrNotExist) {
		c.loadErr = err
		return
	}
	if c.sizes != nil && (mod.Equal(c.modTime) || c.loadErr != nil && mod.Equal(c.badMod)) {
		return
	}
	sizes, err := loadSizes(c.path, !mod.IsZero())
	if err != nil {
		c.loadErr, c.badMod = err, mod
		if c.sizes == nil {
			c.sizes, _ = loadSizes(c.path, false)
		} else if c.Log != nil {
			c.Log.Warn("the size file is invalid; the last good catalog stays in use until it is fixed", "err", err)
		}
		return
	}
	if c.loadErr != nil && c.Log != nil {
		c.Log.Info("the size file is valid again", "file", c.path, "sizes", len(sizes))
	}
	c.sizes, c.modTime, c.loadErr = sizes, mod, nil
}

// Watch re-reads the admin's file every interval until ctx ends, so an
// edit is taken up (or, if invalid, reported) without waiting for a
// request to read the catalog.
func (c *Catalog) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.refresh()
		}
	}
}

func loadSizes(path string, exists bool) ([]api.Size, error) {
	out := make([]api.Size, 0, len(builtinSizes))
	for _, s := range builtinSizes {
		s.Source = "builtin"
		out = append(out, s)
	}
	if !exists {
		sortSizes(out)
		return out, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		Sizes []api.Size `json:"sizes"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, s := range out {
		seen[strings.ToUpper(s.Name)] = true
	}
	for i, s := range file.Sizes {
		where := fmt.Sprintf("%s: sizes[%d]", path, i)
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("%s: name is required", where)
		case seen[strings.ToUpper(s.Name)]:
			return nil, fmt.Errorf("%s: size %q is defined twice", where, s.Name)
		case s.Cores < 1:
			return nil, fmt.Errorf("%s (%s): cores must be at least 1", where, s.Name)
		case s.MemoryGB <= 0:
			return nil, fmt.Errorf("%s (%s): memory_gb must be more than 0", where, s.Name)
		case s.GPUs < 0:
			return nil, fmt.Errorf("%s (%s): gpus must not be negative", where, s.Name)
		}
		seen[strings.ToUpper(s.Name)] = true
		if s.Family == "" {
			s.Family = "custom"
		}
		s.Source = path
		out = append(out, s)
	}
	sortSizes(out)
	return out, nil
}

func sortSizes(s []api.Size) { sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name }) }

// All returns every size, sorted by name.
func (c *Catalog) All() []api.Size {
	c.refresh()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.Size(nil), c.sizes...)
}

// Err is the problem with the admin's file, if any.
func (c *Catalog) Err() error {
	c.refresh()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadErr
}

// Find looks a size up case-insensitively.
func (c *Catalog) Find(name string) (api.Size, bool) {
	for _, s := range c.All() {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return api.Size{}, false
}

// resolveSize validates a vm_size field and returns the catalog's spelling.
// decodeSized decodes the properties of a kind whose nodes have a size
// (into p, whose Common and VMSize fields are given), checks the common
// fields and resolves vm_size to the catalog's spelling.
func decodeSized(raw json.RawMessage, p any, common *Common, vmSize *string, env Env) (api.Size, error) {
	if err := decodeStrict(raw, p); err != nil {
		return api.Size{}, err
	}
	if err := common.validate(); err != nil {
		return api.Size{}, err
	}
	size, err := resolveSize(env, *vmSize)
	if err != nil {
		return api.Size{}, err
	}
	*vmSize = size.Name
	return size, nil
}

func resolveSize(env Env, name string) (api.Size, error) {
	if name == "" {
		return api.Size{}, api.Invalid("vm_size", "vm_size is required (see `paddock compute sizes`)")
	}
	s, ok := env.Sizes.Find(name)
	if !ok {
		return api.Size{}, api.Invalid("vm_size", "vm_size %q is not a known size; `paddock compute sizes` lists them", name)
	}
	return s, nil
}
