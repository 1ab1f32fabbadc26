package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/spf13/cobra"
)

// caFileFlag is the root's --ca-file. It lives here, not on a command,
// because newClient is called without one; building the tree (NewRoot)
// resets it to "".
var caFileFlag string

func addCAFileFlag(root *cobra.Command) {
	root.PersistentFlags().StringVar(&caFileFlag, "ca-file", "",
		"PEM file of the CA that signed the server's certificate, trusted besides the system's CAs (env SLIPWAY_CA_FILE; `slipway login` stores it)")
}

// givenCAFile is the CA file of this command line, --ca-file before
// SLIPWAY_CA_FILE, and the name of where it came from.
func givenCAFile() (file, from string) {
	if caFileFlag != "" {
		return caFileFlag, "--ca-file"
	}
	if v := os.Getenv("SLIPWAY_CA_FILE"); v != "" {
		return v, "SLIPWAY_CA_FILE"
	}
	return "", ""
}

// clientOptions verifies the server against the system's CAs and, when
// the config names one, its CA file's: added to them, never replacing
// verification.
func (c clientConfig) clientOptions() ([]client.Option, error) {
	if c.CAFile == "" {
		return []client.Option{client.WithTrustAdvice("pass --ca-file FILE (or set SLIPWAY_CA_FILE) naming the PEM certificate of the CA that signed it; " +
			"`slipway login URL --token TOKEN --ca-file FILE` keeps it for later commands")}, nil
	}
	roots, err := rootsWith(c.CAFile)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, fmt.Errorf("read the CA file (%s): %w", c.caFrom, err)
	case err != nil:
		return nil, fmt.Errorf("the CA file (%s): %w: give the certificate of the CA that signed the server's", c.caFrom, err)
	}
	advice := fmt.Sprintf("the CA in %s (%s) did not sign it either: pass --ca-file FILE naming the CA that did", c.CAFile, c.caFrom)
	return []client.Option{client.WithTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}), client.WithTrustAdvice(advice)}, nil
}

// rootsWith is the system's trusted roots and the CA certificates in file.
func rootsWith(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool() // no system store: the CA file alone
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	return roots, nil
}
