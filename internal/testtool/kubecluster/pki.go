package kubecluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the cluster's credentials, made with crypto/x509 so that the
// harness needs no openssl. ECDSA P-256 keys throughout: every component
// accepts them, and they are made in microseconds where RSA takes tens of
// milliseconds.
type pki struct {
	caCert, caKey           string // the CA every component trusts
	apiCert, apiKey         string // kube-apiserver's serving certificate
	kubeletCert, kubeletKey string // kube-apiserver's client certificate for kubelets
	saKey, saPub            string // service-account token signing key
	tokens                  string // static token file
	token                   string // the system:masters token
	caPEM                   []byte
}

func makePKI(dir string, serviceIP net.IP) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caCert: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		apiCert: filepath.Join(dir, "apiserver.crt"), apiKey: filepath.Join(dir, "apiserver.key"),
		kubeletCert: filepath.Join(dir, "apiserver-kubelet-client.crt"), kubeletKey: filepath.Join(dir, "apiserver-kubelet-client.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
		tokens: filepath.Join(dir, "tokens.csv"),
	}
	now := time.Now().Add(-time.Hour) // some slack for clocks
	caKey, err := writeKey(p.caKey)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "slipway-kubecluster-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if p.caPEM, err = writeCert(p.caCert, caTmpl, caTmpl, caKey.Public(), caKey); err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(mustDER(p.caPEM))

	apiKey, err := writeKey(p.apiKey)
	if err != nil {
		return nil, err
	}
	_, err = writeCert(p.apiCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now,
		NotAfter:    now.Add(10 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), serviceIP},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"},
	}, ca, apiKey.Public(), caKey)
	if err != nil {
		return nil, err
	}

	// kube-apiserver shows itself to kubelets (logs, exec, port-forward)
	// with this; kubelet authorizes it through the API, where
	// system:masters may do anything.
	kubeletKey, err := writeKey(p.kubeletKey)
	if err != nil {
		return nil, err
	}
	_, err = writeCert(p.kubeletCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		NotBefore:   now,
		NotAfter:    now.Add(10 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, kubeletKey.Public(), caKey)
	if err != nil {
		return nil, err
	}

	saKey, err := writeKey(p.saKey)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}

	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	p.token = hex.EncodeToString(secret)
	// token,user,uid,"groups"
	line := fmt.Sprintf("%s,slipway-admin,slipway-admin,\"system:masters\"\n", p.token)
	if err := os.WriteFile(p.tokens, []byte(line), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

func writeKey(file string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return key, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(file string, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", filepath.Base(file), err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return b, os.WriteFile(file, b, 0o644)
}

func mustDER(b []byte) []byte {
	blk, _ := pem.Decode(b)
	return blk.Bytes
}

// kubeconfig is a kubeconfig file for the token, trusting the CA.
func kubeconfig(server, context string, caPEM []byte, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[2]s
  cluster:
    server: %[1]s
    certificate-authority-data: %[3]s
users:
- name: %[2]s
  user:
    token: %[4]s
contexts:
- name: %[2]s
  context:
    cluster: %[2]s
    user: %[2]s
    namespace: default
current-context: %[2]s
`, server, context, base64.StdEncoding.EncodeToString(caPEM), token)
}
