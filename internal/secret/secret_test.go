package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileCreatedPrivateAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	b1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %v, want 0600", fi.Mode().Perm())
	}
	sealed := b1.Seal([]byte("hunter2"), []byte("a"))
	b2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.Open(sealed, []byte("a"))
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b2.Open(sealed, []byte("b")); err == nil {
		t.Fatal("Open with other additional data succeeded")
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
}

func TestValueRedacts(t *testing.T) {
	v := New("s3cret")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "pw", v)
	j, _ := json.Marshal(map[string]Value{"pw": v})
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s", v, v, v, v), buf.String(), string(j)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("secret leaked in %q", s)
		}
	}
	if v.Reveal() != "s3cret" {
		t.Fatal("Reveal lost the value")
	}
}

func TestSealMapRoundTrip(t *testing.T) {
	b, err := NewBox(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b.SealMap(map[string]Value{"password": New("pw")}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.OpenMap(sealed, []byte("x"))
	if err != nil || m["password"].Reveal() != "pw" {
		t.Fatalf("OpenMap = %v, %v", m, err)
	}
	if empty, _ := b.SealMap(nil, nil); empty != nil {
		t.Fatal("empty map sealed to bytes")
	}
}

func TestSignVerify(t *testing.T) {
	b1, _ := NewBox(make([]byte, KeySize))
	k2 := make([]byte, KeySize)
	k2[0] = 1
	b2, _ := NewBox(k2)
	sig := b1.Sign("run-1", "2")
	if !b1.Verify(sig, "run-1", "2") {
		t.Fatal("own signature refused")
	}
	for _, bad := range [][]string{{"run-1", "3"}, {"run-12", ""}, {"run-1"}} {
		if b1.Verify(sig, bad...) {
			t.Errorf("signature accepted for %v", bad)
		}
	}
	if b2.Verify(sig, "run-1", "2") {
		t.Fatal("signature accepted under another key")
	}
}
