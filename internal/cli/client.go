package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// clientConfig is what `slipway login` stores.
type clientConfig struct {
	URL   string `yaml:"url"`
	Token string `yaml:"token"`
	// CAFile is the CA certificate (PEM) the server is verified with,
	// besides the system's; an absolute path.
	CAFile string `yaml:"ca_file,omitempty"`
	caFrom string // where CAFile came from, for errors: a flag, a variable or the config file
}

func configPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find config directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "slipway", "config.yaml"), nil
}

func loadConfig() (clientConfig, error) {
	var c clientConfig
	path, err := configPath()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	if err == nil {
		if err := yaml.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("%s is not valid YAML: %w", path, err)
		}
		c.caFrom = "ca_file in " + path
	}
	if v := os.Getenv("SLIPWAY_URL"); v != "" {
		c.URL = v
	}
	if v := os.Getenv("SLIPWAY_TOKEN"); v != "" {
		c.Token = v
	}
	if file, from := givenCAFile(); file != "" {
		c.CAFile, c.caFrom = file, from
	}
	return c, nil
}

func saveConfig(c clientConfig) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// newClient is a client of the server and token the config names.
func newClient() (*client.Client, error) {
	c, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if c.URL == "" || c.Token == "" {
		return nil, errors.New("not logged in: run `slipway login URL --token TOKEN` or set SLIPWAY_URL and SLIPWAY_TOKEN")
	}
	opts, err := c.clientOptions()
	if err != nil {
		return nil, err
	}
	return client.New(c.URL, c.Token, opts...), nil
}

func pathEscape(s string) string { return url.PathEscape(s) }

// sendAndSay sends one request and prints the server's message: the shape
// of every command that asks the server to do one thing (cancel, stop, …).
func sendAndSay(cmd *cobra.Command, method, path string, body any) error {
	c, _, err := setup(cmd)
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.Do(cmd.Context(), method, path, body, &out); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), out["message"])
	return nil
}
