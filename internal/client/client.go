// Package client calls Slipway's HTTP API with a token: the CLI and the
// demo both drive the server through it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is one server and the token it is called with.
type Client struct {
	base   string
	token  string
	http   *http.Client // for calls that answer at once
	stream *http.Client // downloads and followed logs: no overall timeout
	advice string       // how to give the client a CA; see WithTrustAdvice
}

// Option configures a Client.
type Option func(*options)

type options struct {
	tls    *tls.Config
	advice string
}

// WithTLS verifies the server with cfg: its RootCAs, for a server whose
// certificate a private CA signed.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithTrustAdvice ends the error of a certificate signed by an authority
// the client does not trust with advice: how its user gives it the CA.
func WithTrustAdvice(advice string) Option { return func(o *options) { o.advice = advice } }

// New returns a client of the server at url (a trailing slash is dropped).
func New(url, token string, opts ...Option) *Client {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// One transport for both kinds of call, so both verify the server alike
	// (and share connections); the default one's HTTP/2 stays on.
	t := http.DefaultTransport.(*http.Transport).Clone()
	if o.tls != nil {
		t.TLSClientConfig = o.tls.Clone()
	}
	return &Client{base: strings.TrimRight(url, "/"), token: token, advice: o.advice,
		http: &http.Client{Transport: t, Timeout: 60 * time.Second}, stream: &http.Client{Transport: t}}
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base }

// Error is the server's error body.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *Error) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return fmt.Sprintf("%s (field %s)", e.Message, e.Field)
	}
	return e.Message
}

// Do sends in as JSON (when not nil) and decodes the answer into out (when
// not nil). An error answer comes back as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(c.http, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode server response: %w", err)
	}
	return nil
}

// Stream GETs path with no overall timeout (a download, or logs that
// follow a task) and returns a 200 answer; the caller closes its body.
func (c *Client) Stream(ctx context.Context, path string, accept string) (*http.Response, error) {
	req, err := c.request(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.send(c.stream, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &Error{Status: resp.StatusCode, Message: fmt.Sprintf("server answered %s", resp.Status)}
	}
	return resp, nil
}

// Events reads the Server-Sent Events stream at path, calling fn for each
// event until fn says it is done or fails; a stream that ends first is an
// error.
func (c *Client) Events(ctx context.Context, path string, fn func(event string, data []byte) (bool, error)) error {
	resp, err := c.Stream(ctx, path, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
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
	return errors.New("the event stream ended before what it followed did")
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return req, nil
}

// send does req and turns an error status into the server's *Error.
func (c *Client) send(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, &CertificateError{URL: c.base, Err: verr.Err, Advice: c.advice}
		}
		return nil, fmt.Errorf("cannot reach the Slipway server at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, c.decodeError(resp)
	}
	return resp, nil
}

// httpsOnly is what net/http answers a plain HTTP request on a TLS port.
const httpsOnly = "Client sent an HTTP request to an HTTPS server."

// decodeError turns an error answer into the server's message.
func (c *Client) decodeError(resp *http.Response) error {
	var env struct {
		Error *Error `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		env.Error.Status = resp.StatusCode
		return env.Error
	}
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte(httpsOnly)) {
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("the Slipway server at %s serves HTTPS only: use %s",
			c.base, strings.Replace(c.base, "http://", "https://", 1))}
	}
	return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("server answered %s", resp.Status)}
}

// CertificateError is a server certificate the client could not verify;
// Err is x509's reason (an unknown authority, another host's name, an
// expired certificate).
type CertificateError struct {
	URL    string
	Err    error
	Advice string // see WithTrustAdvice
}

func (e *CertificateError) Error() string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(e.Err, &unknown):
		msg := fmt.Sprintf("the Slipway server at %s presented a certificate signed by an authority this client does not trust (%v)", e.URL, e.Err)
		if e.Advice != "" {
			msg += "; " + e.Advice
		}
		return msg
	case errors.As(e.Err, &host):
		return fmt.Sprintf("the Slipway server at %s presented a certificate for other names (%v): use a URL with a name the certificate lists", e.URL, e.Err)
	}
	return fmt.Sprintf("the Slipway server at %s presented a certificate this client cannot accept (%v): the server's certificate needs renewing or replacing", e.URL, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }
