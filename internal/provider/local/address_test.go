package local

import (
	"fmt"
	"testing"
)

func TestNextAddress(t *testing.T) {
	used := func(hosts ...int) map[string]bool {
		m := map[string]bool{}
		for _, h := range hosts {
			m[fmt.Sprintf("127.0.1.%d", h)] = true
		}
		return m
	}
	all := make([]int, 0, lastHost-firstHost+1)
	for h := firstHost; h <= lastHost; h++ {
		all = append(all, h)
	}
	for _, tc := range []struct {
		name string
		used map[string]bool
		last int
		want string
		ok   bool
	}{
		{"first ever", nil, 0, "127.0.1.2", true},
		{"after the last one handed out", nil, 7, "127.0.1.8", true},
		{"skips addresses in use (an adopted node's)", used(2, 3), 0, "127.0.1.4", true},
		{"wraps round at the end of the range", used(2), 254, "127.0.1.3", true},
		{"never 127.0.1.1 or .255", nil, 254, "127.0.1.2", true},
		{"the only free one is behind", used(all[1:]...), 100, "127.0.1.2", true},
		{"every address in use", used(all...), 5, "", false},
	} {
		addr, _, ok := nextAddress(tc.used, tc.last)
		if addr != tc.want || ok != tc.ok {
			t.Errorf("%s: got %q %v, want %q %v", tc.name, addr, ok, tc.want, tc.ok)
		}
	}
}

// Handing out every address without freeing any gives each once.
func TestNextAddressNeverRepeatsWhileInUse(t *testing.T) {
	used := map[string]bool{}
	last := 0
	for i := 0; i < lastHost-firstHost+1; i++ {
		addr, host, ok := nextAddress(used, last)
		if !ok || used[addr] {
			t.Fatalf("allocation %d: %q %v (already used: %v)", i, addr, ok, used[addr])
		}
		used[addr], last = true, host
	}
	if _, _, ok := nextAddress(used, last); ok {
		t.Fatal("an address was handed out with all in use")
	}
}
