package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// clientConfig is what `slipway login` stores.
type clientConfig struct {
	URL   string `yaml:"url"`
	Token string `yaml:"token"`
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
	}
	if v := os.Getenv("SLIPWAY_URL"); v != "" {
		c.URL = v
	}
	if v := os.Getenv("SLIPWAY_TOKEN"); v != "" {
		c.Token = v
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

// client talks to the server's JSON API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient() (*client, error) {
	c, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if c.URL == "" || c.Token == "" {
		return nil, errors.New("not logged in: run `slipway login URL --token TOKEN` or set SLIPWAY_URL and SLIPWAY_TOKEN")
	}
	return &client{base: trimURL(c.URL), token: c.Token, http: defaultHTTP()}, nil
}

// apiError mirrors the server's error body.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return fmt.Sprintf("%s (field %s)", e.Message, e.Field)
	}
	return e.Message
}

func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Slipway server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode server response: %w", err)
	}
	return nil
}

func trimURL(u string) string { return strings.TrimRight(u, "/") }

func defaultHTTP() *http.Client { return &http.Client{Timeout: 60 * time.Second} }

func pathEscape(s string) string { return url.PathEscape(s) }

// decodeError turns an error response into the server's message.
func decodeError(resp *http.Response) error {
	var env struct {
		Error *apiError `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		env.Error.Status = resp.StatusCode
		return env.Error
	}
	return &apiError{Status: resp.StatusCode, Message: fmt.Sprintf("server answered %s", resp.Status)}
}

// events reads a Server-Sent Events stream, calling fn for each event until
// fn says it is done or the stream ends.
func (c *client) events(ctx context.Context, path string, fn func(event string, data []byte) (bool, error)) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	stream := &http.Client{} // no overall timeout: a follow lasts as long as the run
	resp, err := stream.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Slipway server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event, data := "message", []byte(nil)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data != nil {
				done, err := fn(event, data)
				if err != nil || done {
					return err
				}
			}
			event, data = "message", nil
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[6:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("log stream ended before the run did")
}

// sendAndSay sends one request and prints the server's message: the shape
// of every command that asks the server to do one thing (cancel, stop, …).
func sendAndSay(cmd *cobra.Command, method, path string, body any) error {
	c, _, err := setup(cmd)
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.do(cmd.Context(), method, path, body, &out); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), out["message"])
	return nil
}
