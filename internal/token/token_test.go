package token

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	a, b, n := New(), New(), NewNode()
	if a == b || !strings.HasPrefix(a, UserPrefix) || !strings.HasPrefix(n, NodePrefix) || len(a) != len(UserPrefix)+43 {
		t.Errorf("tokens %q %q %q", a, b, n)
	}
	if Hash(a) == Hash(b) || len(Hash(a)) != 64 || Hash(a) != Hash(string([]byte(a))) {
		t.Error("hashes must be stable, distinct and hex SHA-256")
	}
}
