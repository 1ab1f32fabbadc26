// Package kube runs an environment's tasks in a Kubernetes namespace: it
// implements task.Backend with client-go, so deployments, self-healing,
// health checks, logs and events work there as on the local Docker
// engine. Each task is one Pod that Slipway's reconciler owns (see
// docs/kubernetes.md for why not a Deployment), and Slipway's own load
// balancer sends each request to a pod's address, which keeps canary
// weights exact.
package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Config is where an environment's tasks run.
type Config struct {
	// Kubeconfig is the kubeconfig file's content; it must carry its
	// credentials inline (see ParseKubeconfig).
	Kubeconfig []byte
	// Context names the kubeconfig context ("": its current context).
	Context string
	// Namespace holds the environment's pods ("": the context's, else "default").
	Namespace string
}

// ConfigError is a kubeconfig refused for a field.
type ConfigError struct {
	Field, Detail string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Detail }

// MaxKubeconfig bounds a kubeconfig a client sends.
const MaxKubeconfig = 256 << 10

// RESTConfig turns c into a client configuration, refusing what would
// make the server read its own files or run programs on a client's
// behalf: a kubeconfig is given by an API client, and a `token-file:
// /data/master.key` would send the server's key to any API server named
// in it, an `exec` plugin would run any command on the server.
func (c Config) RESTConfig() (*rest.Config, string, error) {
	if len(c.Kubeconfig) == 0 {
		return nil, "", &ConfigError{"kubeconfig", "is empty; give the file the cluster's kubectl uses (--kubeconfig FILE)"}
	}
	if len(c.Kubeconfig) > MaxKubeconfig {
		return nil, "", &ConfigError{"kubeconfig", fmt.Sprintf("is %d bytes; at most %d", len(c.Kubeconfig), MaxKubeconfig)}
	}
	raw, err := clientcmd.Load(c.Kubeconfig)
	if err != nil {
		return nil, "", &ConfigError{"kubeconfig", "does not parse: " + err.Error()}
	}
	name := c.Context
	if name == "" {
		name = raw.CurrentContext
	}
	kctx, ok := raw.Contexts[name]
	if name == "" || !ok {
		names := slices.Sorted(maps.Keys(raw.Contexts))
		has := strings.Join(names, ", ")
		if has == "" {
			has = "none"
		}
		return nil, "", &ConfigError{"context", fmt.Sprintf("%q is not a context of the kubeconfig (it has: %s); name one with --context", name, has)}
	}
	if err := inlineOnly(raw, kctx); err != nil {
		return nil, "", err
	}
	ns := c.Namespace
	if ns == "" {
		ns = kctx.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, "", &ConfigError{"namespace", fmt.Sprintf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))}
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, "", &ConfigError{"kubeconfig", err.Error()}
	}
	return rc, ns, nil
}

// inlineOnly refuses file references and credential plugins in the
// context's cluster and user.
func inlineOnly(raw *clientcmdapi.Config, kctx *clientcmdapi.Context) error {
	cl, ok := raw.Clusters[kctx.Cluster]
	if !ok {
		return &ConfigError{"kubeconfig", fmt.Sprintf("context names cluster %q, which it does not define", kctx.Cluster)}
	}
	if cl.CertificateAuthority != "" {
		return &ConfigError{"kubeconfig clusters[].cluster.certificate-authority", "names a file on the server; inline it as certificate-authority-data (kubectl config view --raw --flatten)"}
	}
	if cl.ProxyURL != "" {
		return &ConfigError{"kubeconfig clusters[].cluster.proxy-url", "is not supported; remove it (the server's HTTPS_PROXY applies to its requests)"}
	}
	u, ok := raw.AuthInfos[kctx.AuthInfo]
	if !ok {
		if kctx.AuthInfo == "" {
			return nil // anonymous, as the cluster allows
		}
		return &ConfigError{"kubeconfig", fmt.Sprintf("context names user %q, which it does not define", kctx.AuthInfo)}
	}
	switch {
	case u.Exec != nil:
		return &ConfigError{"kubeconfig users[].user.exec", "would run a program on the Slipway server; give a token (a service account's) or client-certificate-data instead"}
	case u.AuthProvider != nil:
		return &ConfigError{"kubeconfig users[].user.auth-provider", "is not supported; give a token (a service account's) or client-certificate-data instead"}
	case u.TokenFile != "":
		return &ConfigError{"kubeconfig users[].user.tokenFile", "names a file on the server; inline the token as token"}
	case u.ClientCertificate != "" || u.ClientKey != "":
		return &ConfigError{"kubeconfig users[].user.client-certificate", "names a file on the server; inline it as client-certificate-data and client-key-data (kubectl config view --raw --flatten)"}
	case u.Impersonate != "" || len(u.ImpersonateGroups) > 0:
		return &ConfigError{"kubeconfig users[].user.as", "impersonation is not supported; give the credentials of the account itself"}
	}
	return nil
}

// errForbidden marks an RBAC refusal.
var errForbidden = errors.New("forbidden")
