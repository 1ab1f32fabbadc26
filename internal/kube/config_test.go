package kube

import (
	"errors"
	"strings"
	"testing"
)

const kubeconfigHead = `apiVersion: v1
kind: Config
current-context: c1
clusters:
- name: k
  cluster:
    server: https://127.0.0.1:6443
CLUSTER
contexts:
- name: c1
  context: {cluster: k, user: u, namespace: shop}
- name: c2
  context: {cluster: k, user: u}
users:
- name: u
  user:
USER
`

func kubeconfig(cluster, user string) []byte {
	return []byte(strings.NewReplacer("CLUSTER", cluster, "USER", user).Replace(kubeconfigHead))
}

func TestRESTConfigRefusesWhatReadsOrRunsOnTheServer(t *testing.T) {
	tests := []struct {
		name          string
		cluster, user string
		context, ns   string
		field         string // "" when accepted
		wantNS        string
	}{
		{name: "inline token", user: "    token: abc", wantNS: "shop"},
		{name: "context without namespace", user: "    token: abc", context: "c2", wantNS: "default"},
		{name: "namespace given", user: "    token: abc", ns: "web", wantNS: "web"},
		// Attacks: a kubeconfig comes from an API client, and these would
		// make the server send its own files to a server the client names,
		// or run the client's program.
		{name: "token file", user: "    tokenFile: /data/master.key", field: "kubeconfig users[].user.tokenFile"},
		{name: "client certificate file", user: "    client-certificate: /data/tls.crt\n    client-key: /data/tls.key", field: "kubeconfig users[].user.client-certificate"},
		{name: "CA file", cluster: "    certificate-authority: /etc/shadow", user: "    token: abc", field: "kubeconfig clusters[].cluster.certificate-authority"},
		{name: "exec plugin", user: "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [-c, 'cat /data/master.key']", field: "kubeconfig users[].user.exec"},
		{name: "auth provider", user: "    auth-provider:\n      name: oidc", field: "kubeconfig users[].user.auth-provider"},
		{name: "impersonation", user: "    token: abc\n    as: admin", field: "kubeconfig users[].user.as"},
		{name: "unknown context", user: "    token: abc", context: "nope", field: "context"},
		{name: "bad namespace", user: "    token: abc", ns: "Shop_1", field: "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ns, err := Config{Kubeconfig: kubeconfig(tt.cluster, tt.user), Context: tt.context, Namespace: tt.ns}.RESTConfig()
			var ce *ConfigError
			if tt.field == "" {
				if err != nil || ns != tt.wantNS {
					t.Fatalf("RESTConfig = %q, %v; want namespace %q", ns, err, tt.wantNS)
				}
				return
			}
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("RESTConfig error = %v; want a ConfigError for %s", err, tt.field)
			}
		})
	}
	if _, _, err := (Config{Kubeconfig: []byte("{{not yaml")}).RESTConfig(); err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("garbage: %v", err)
	}
	if _, _, err := (Config{}).RESTConfig(); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("empty: %v", err)
	}
}
