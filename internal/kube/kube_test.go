package kube

import (
	"errors"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

const kcTemplate = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", CLUSTER}
users:
- name: u
  user: {USER}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: ml}
- name: two
  context: {cluster: c, user: u}
current-context: one
`

func kc(cluster, user string) []byte {
	return []byte(strings.NewReplacer("CLUSTER", cluster, "USER", user).Replace(kcTemplate))
}

func TestConnect(t *testing.T) {
	t.Parallel()
	ok := kc("insecure-skip-tls-verify: true", "token: secret-token")
	tests := []struct {
		desc, context, ns string
		wantNS            string
	}{
		{"current context's namespace", "", "", "ml"},
		{"namespace given", "", "other", "other"},
		{"context without namespace", "two", "", "default"},
	}
	for _, tc := range tests {
		c, err := Connect(ok, tc.context, tc.ns)
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		if c.Namespace != tc.wantNS || c.Server != "https://127.0.0.1:6443" || c.Config.BearerToken != "secret-token" {
			t.Errorf("%s: namespace %q server %q", tc.desc, c.Namespace, c.Server)
		}
	}
}

// A kubeconfig is the user's, but the server would act on it with its
// own privileges: one that runs a command or reads a file of the server's
// host is refused, and no error carries the kubeconfig's secrets.
func TestConnectRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, context string
		kubeconfig    []byte
		field, msg    string
	}{
		{"empty", "", []byte("  \n"), "kubeconfig", "required"},
		{"not YAML", "", []byte("{{{ secret-token"), "kubeconfig", "Kubernetes can read"},
		{"exec plugin", "", kc("", "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'cat /etc/shadow']}"), "kubeconfig", "running a command"},
		{"auth provider", "", kc("", "auth-provider: {name: oidc}"), "kubeconfig", "auth-provider"},
		{"token file", "", kc("", "tokenFile: /root/.paddock/admin-token"), "kubeconfig", "tokenFile"},
		{"client cert file", "", kc("", "client-certificate: /etc/ssl/x.pem, client-key: /etc/ssl/x.key"), "kubeconfig", "from a file"},
		{"CA file", "", kc("certificate-authority: /etc/kubernetes/ca.crt", "token: secret-token"), "kubeconfig", "certificate-authority-data"},
		{"missing context", "three", kc("", "token: secret-token"), "context", `no context "three" (it has one, two)`},
	}
	for _, tc := range tests {
		_, err := Connect(tc.kubeconfig, tc.context, "")
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || ae.Field != tc.field || !strings.Contains(ae.Message, tc.msg) {
			t.Errorf("%s: %v, want Invalid %s %q", tc.desc, err, tc.field, tc.msg)
			continue
		}
		if strings.Contains(ae.Message, "secret-token") {
			t.Errorf("%s: the error shows the token: %s", tc.desc, ae.Message)
		}
	}
}

func TestQuantities(t *testing.T) {
	t.Parallel()
	if q := Cores(0.5); q.String() != "500m" {
		t.Errorf("Cores(0.5) = %s", q.String())
	}
	if q := Cores(4); q.String() != "4" {
		t.Errorf("Cores(4) = %s", q.String())
	}
	if q := Memory(16); q.String() != "16Gi" {
		t.Errorf("Memory(16) = %s", q.String())
	}
	if q := Memory(1.5); q.String() != "1536Mi" {
		t.Errorf("Memory(1.5) = %s", q.String())
	}
}
