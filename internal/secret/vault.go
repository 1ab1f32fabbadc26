package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// Vault stores secrets sealed under the keyring and resolves the references
// task definitions and buildspecs make to them.
type Vault struct {
	Store store.SecretStore
	Keys  *Keyring
}

var nameRule = regexp.MustCompile(`^[A-Za-z0-9_+=.@/-]{1,128}$`)

// ValidName checks a secret name; names never hold ':' because references
// use it to separate the JSON key.
func ValidName(name string) error {
	if !nameRule.MatchString(name) {
		return fmt.Errorf("secret name %q must be 1–128 characters of letters, digits and _+=.@/- (no colons)", name)
	}
	return nil
}

// Set stores value as the next version of the secret in that scope.
func (v *Vault) Set(ctx context.Context, name, app, env, value, by string) (int, error) {
	if err := ValidName(name); err != nil {
		return 0, err
	}
	return v.Store.PutSecret(ctx, store.Secret{Name: name, App: app, Env: env, UpdatedBy: by}, v.Keys.Seal([]byte(value)))
}

// Lookup returns the newest value of name, preferring the most specific
// scope: app and environment, then the app, then global.
func (v *Vault) Lookup(ctx context.Context, name, app, env string) (string, bool, error) {
	type scope struct{ app, env string }
	var scopes []scope
	if app != "" && env != "" {
		scopes = append(scopes, scope{app, env})
	}
	if app != "" {
		scopes = append(scopes, scope{app, ""})
	}
	scopes = append(scopes, scope{"", ""})
	for _, sc := range scopes {
		_, sealed, err := v.Store.SealedSecret(ctx, name, sc.app, sc.env)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		plain, err := v.Keys.Open(sealed)
		if err != nil {
			return "", false, fmt.Errorf("secret %s: %w", name, err)
		}
		return string(plain), true, nil
	}
	return "", false, nil
}

// Ref is a parsed secret reference: the names to try, in order, and an
// optional key to extract from a JSON value.
type Ref struct {
	Names   []string
	JSONKey string
}

var awsSuffix = regexp.MustCompile(`-[A-Za-z0-9]{6}$`)

// ParseRef reads a valueFrom (task definition) or a secrets-manager /
// parameter-store value (buildspec). Accepted forms:
//
//	NAME[:json-key[:version-stage[:version-id]]]
//	arn:slipway:secret:NAME[:json-key]
//	arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[-SUFFIX][:json-key[:stage[:id]]]
//	arn:aws:ssm:REGION:ACCOUNT:parameter/PATH/NAME
//	/PATH/NAME (an SSM parameter name)
//
// AWS names resolve to the Slipway secret named by their last segment, so
// the seeds' files work unchanged.
func ParseRef(ref string) (Ref, error) {
	if strings.TrimSpace(ref) == "" {
		return Ref{}, errors.New("empty secret reference; give a secret name or ARN")
	}
	parts := strings.Split(ref, ":")
	var name, key string
	switch {
	case len(parts) >= 2 && parts[0] == "arn" && parts[1] == "slipway":
		if len(parts) < 4 || len(parts) > 5 || parts[2] != "secret" || parts[3] == "" {
			return Ref{}, fmt.Errorf("%q: a Slipway ARN reads arn:slipway:secret:NAME[:json-key]", ref)
		}
		if len(parts) == 5 {
			key = parts[4]
		}
		return Ref{Names: []string{parts[3]}, JSONKey: key}, nil
	case len(parts) >= 6 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws"):
		switch parts[2] {
		case "secretsmanager":
			if len(parts) < 7 || parts[5] != "secret" || parts[6] == "" {
				return Ref{}, fmt.Errorf("%q: a Secrets Manager ARN reads arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key]", ref)
			}
			name = parts[6]
			if len(parts) > 7 {
				key = parts[7]
			}
			return Ref{Names: candidates(name, true), JSONKey: key}, nil
		case "ssm":
			param, ok := strings.CutPrefix(strings.Join(parts[5:], ":"), "parameter")
			if !ok || param == "" {
				return Ref{}, fmt.Errorf("%q: an SSM ARN reads arn:aws:ssm:REGION:ACCOUNT:parameter/NAME", ref)
			}
			return Ref{Names: candidates(param, false)}, nil
		}
		return Ref{}, fmt.Errorf("%q: only Secrets Manager and SSM parameter ARNs name secrets", ref)
	}
	name = parts[0]
	if len(parts) > 1 {
		key = parts[1]
	}
	if len(parts) > 4 {
		return Ref{}, fmt.Errorf("%q: a reference reads NAME[:json-key[:version-stage[:version-id]]]", ref)
	}
	return Ref{Names: candidates(name, false), JSONKey: key}, nil
}

// candidates lists the Slipway names an AWS-style name may mean: itself,
// then its last path segment, each also without Secrets Manager's random
// six-character suffix.
func candidates(name string, aws bool) []string {
	name = strings.TrimPrefix(name, "/")
	var out []string
	add := func(n string) {
		if n != "" && ValidName(n) == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	last := name[strings.LastIndex(name, "/")+1:]
	for _, n := range []string{name, last} {
		add(n)
		if aws {
			add(awsSuffix.ReplaceAllString(n, ""))
		}
	}
	return out
}

// Resolve returns the value a reference names in the app's environment.
func (v *Vault) Resolve(ctx context.Context, app, env, ref string) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	if len(r.Names) == 0 {
		return "", fmt.Errorf("%q names no valid secret", ref)
	}
	for _, name := range r.Names {
		val, ok, err := v.Lookup(ctx, name, app, env)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		if r.JSONKey == "" {
			return val, nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(val), &obj); err != nil {
			return "", fmt.Errorf("secret %s is not a JSON object, so key %q cannot be extracted", name, r.JSONKey)
		}
		raw, ok := obj[r.JSONKey]
		if !ok {
			return "", fmt.Errorf("secret %s has no JSON key %q", name, r.JSONKey)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
		return string(raw), nil
	}
	where := "globally"
	if app != "" {
		where = "for app " + app
		if env != "" {
			where += " environment " + env
		}
	}
	return "", fmt.Errorf("secret %s is not set %s; set it with: slipway secret set %s --app %s%s", r.Names[0], where, r.Names[len(r.Names)-1], orDash(app), envFlag(env))
}

func orDash(s string) string {
	if s == "" {
		return "APP"
	}
	return s
}

func envFlag(env string) string {
	if env == "" {
		return ""
	}
	return " --env " + env
}
