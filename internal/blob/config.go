// Package blob is Slipway's one seam for blobs: distribution's storage
// driver interface (storagedriver.StorageDriver), with distribution's own
// filesystem driver for the data directory and its s3-aws driver for any
// S3-compatible store. The registry keeps using distribution directly; this
// package only configures it (Config.RegistryStorage). Artifacts, caches and
// logs go through the driver Open returns, and through Put/Upload so that an
// object is visible only once it is complete.
//
// Keys are driver paths ("/artifacts/sha256/ab/…"). Open roots the
// filesystem driver at the directory it is given and the S3 driver at the
// URL's prefix, so one layout serves both: registry/ (distribution's),
// and whatever top-level directories the callers choose beside it.
package blob

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go/aws/session"
)

// Config says where blobs live. The zero value means the data directory.
// Credentials are never part of it: the s3-aws driver takes them from the
// AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), the shared credentials file (AWS_PROFILE,
// AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials) or the instance's role.
// A profile that exists only in ~/.aws/config (SSO, role_arn,
// credential_process) needs AWS_SDK_LOAD_CONFIG=1, as for any program on
// aws-sdk-go v1.
type Config struct {
	// Bucket is empty when blobs stay in the data directory.
	Bucket string
	// Prefix is the key prefix inside the bucket, without leading or
	// trailing slash; empty for the bucket's root.
	Prefix string
	// Region signs requests. Parse fills it from ?region=, AWS_REGION,
	// AWS_DEFAULT_REGION or the shared config's profile, else us-east-1
	// when an endpoint is given (what S3-compatible servers expect).
	Region string
	// Endpoint is an S3-compatible server's URL (http://127.0.0.1:9000);
	// empty for AWS S3 itself.
	Endpoint string
	// PathStyle puts the bucket in the path rather than the host name. It
	// defaults to true with an Endpoint: a server on an IP address or a
	// single host name has no per-bucket DNS names.
	PathStyle bool
}

// S3 reports whether blobs go to S3.
func (c Config) S3() bool { return c.Bucket != "" }

// String is the canonical --blob-store value; it never holds a secret.
func (c Config) String() string {
	if !c.S3() {
		return ""
	}
	u := url.URL{Scheme: "s3", Host: c.Bucket, Path: "/" + c.Prefix}
	q := url.Values{}
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	if c.PathStyle || c.Endpoint != "" { // with an endpoint, Parse's default is true
		q.Set("path-style", strconv.FormatBool(c.PathStyle))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Parse reads a --blob-store value: empty for the data directory, or
// s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path-style=BOOL]. What the URL
// leaves out comes from the usual AWS environment: AWS_REGION,
// AWS_DEFAULT_REGION and the shared config's region; AWS_ENDPOINT_URL_S3,
// then AWS_ENDPOINT_URL. Errors name the part at fault and the fix; none
// repeats the URL, which might hold a password.
func Parse(raw string) (Config, error) {
	c, err := parse(raw, os.Getenv)
	if err == nil && c.S3() && c.Region == "" {
		c.Region = profileRegion()
		if c.Region == "" {
			err = errors.New("blob store URL: no region: add ?region=REGION (us-east-1, eu-west-1, …) or set AWS_REGION")
		}
	}
	return c, err
}

// profileRegion is the region of the shared config's profile (AWS_PROFILE
// or default), as aws-sdk-go reads it; no request is made.
func profileRegion() string {
	sess, err := session.NewSessionWithOptions(session.Options{SharedConfigState: session.SharedConfigEnable})
	if err != nil || sess.Config.Region == nil {
		return ""
	}
	return *sess.Config.Region
}

// bucketName is S3's rule for new buckets.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// prefixSegment keeps prefixes to characters every S3 server and
// distribution's path rule accept.
var prefixSegment = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// parse does Parse's work with the environment given, leaving the region
// empty when neither the URL nor the environment names one (Parse then
// asks the shared config).
func parse(raw string, getenv func(string) string) (Config, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Config{}, nil
	}
	fail := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("blob store URL: "+format, args...)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.EqualFold(scheme, "s3") {
		return fail("want s3://BUCKET/PREFIX (leave it empty to keep blobs in the data directory)")
	}
	// Checked before url.Parse, whose errors quote the whole URL.
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	if strings.Contains(authority, "@") {
		return fail("credentials do not go in the URL: remove the user:password@ part and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the server's environment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("not a URL (%v): want s3://BUCKET/PREFIX", err)
	}
	var c Config
	c.Bucket = u.Host
	switch {
	case c.Bucket == "":
		return fail("no bucket: want s3://BUCKET/PREFIX")
	case u.Port() != "":
		return fail("bucket %q has a port: the bucket is the host part; give the server as ?endpoint=http://HOST:PORT", c.Bucket)
	case !bucketName.MatchString(c.Bucket) || strings.Contains(c.Bucket, ".."):
		return fail("bucket %q is not a valid S3 bucket name: use 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", c.Bucket)
	}
	if u.Fragment != "" {
		return fail("remove the #%s fragment", u.Fragment)
	}
	c.Prefix = strings.Trim(u.Path, "/")
	if c.Prefix != "" {
		for seg := range strings.SplitSeq(c.Prefix, "/") {
			if seg == "." || seg == ".." || !prefixSegment.MatchString(seg) {
				return fail("prefix %q: use segments of letters, digits, '.', '_' and '-' separated by single slashes", c.Prefix)
			}
		}
	}

	q := u.Query()
	pathStyleSet := false
	for key, vals := range q {
		if len(vals) != 1 {
			return fail("parameter %s is given %d times: give it once", key, len(vals))
		}
		val := vals[0]
		switch strings.ToLower(key) {
		case "region":
			if val == "" {
				return fail("region is empty: give ?region=REGION or leave the parameter out")
			}
			c.Region = val
		case "endpoint":
			c.Endpoint = val
		case "path-style":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fail("path-style=%q: want true or false", val)
			}
			c.PathStyle, pathStyleSet = b, true
		case "access-key", "accesskey", "access_key", "access-key-id", "aws_access_key_id",
			"secret-key", "secretkey", "secret_key", "secret-access-key", "aws_secret_access_key",
			"session-token", "sessiontoken", "token", "password":
			return fail("parameter %s: credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the server's environment", key)
		default:
			return fail("unknown parameter %q: the parameters are region, endpoint and path-style", key)
		}
	}
	if c.Region == "" {
		c.Region = getenv("AWS_REGION")
	}
	if c.Region == "" {
		c.Region = getenv("AWS_DEFAULT_REGION")
	}
	if c.Endpoint == "" {
		c.Endpoint = getenv("AWS_ENDPOINT_URL_S3")
	}
	if c.Endpoint == "" {
		c.Endpoint = getenv("AWS_ENDPOINT_URL")
	}
	if c.Endpoint != "" {
		ep, err := checkEndpoint(c.Endpoint)
		if err != nil {
			return fail("%v", err)
		}
		c.Endpoint = ep
		if !pathStyleSet {
			c.PathStyle = true
		}
		if c.Region == "" {
			c.Region = "us-east-1"
		}
	}
	return c, nil
}

func checkEndpoint(raw string) (string, error) {
	if strings.Contains(raw, "@") {
		return "", errors.New("endpoint: credentials do not go in the URL: remove user:password@ and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("endpoint %q is not a URL: want http://HOST[:PORT] or https://HOST[:PORT]", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("endpoint %q has no host: want http://HOST[:PORT] or https://HOST[:PORT]", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("endpoint %q: give only scheme, host and port (the bucket and prefix go in s3://BUCKET/PREFIX)", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// s3Driver is the name distribution's s3-aws driver registers itself under.
const s3Driver = "s3aws"

// s3Params are the s3-aws driver's parameters for keys under root. No
// credentials: the driver's AWS session finds them in the environment and
// shared files, and refreshes temporary ones (an explicit access key would
// drop AWS_SESSION_TOKEN: the driver's factory ignores session tokens).
func (c Config) s3Params(root string) map[string]any {
	p := map[string]any{
		"bucket":         c.Bucket,
		"region":         c.Region,
		"rootdirectory":  root,
		"forcepathstyle": c.PathStyle,
		"v4auth":         true,
		"secure":         true,
	}
	if c.Endpoint != "" {
		p["regionendpoint"] = c.Endpoint
		p["secure"] = strings.HasPrefix(c.Endpoint, "https://")
	}
	return p
}

// RegistryDir is where registry blobs and manifests live, beside the other
// top-level directories of the blob store (as today's data directory has it).
const RegistryDir = "registry"

// RegistryStorage returns the storage driver name and parameters for
// internal/registry's Config (Driver, Parameters): the filesystem driver in
// dataDir/registry as today, or the s3-aws driver under PREFIX/registry.
// With S3 the registry's configuration should also disable redirects
// (storage "redirect": {"disable": true}): otherwise distribution answers
// blob GETs with a presigned S3 URL, which clients may be unable to reach.
func (c Config) RegistryStorage(dataDir string) (driver string, params map[string]any) {
	if !c.S3() {
		return "filesystem", map[string]any{"rootdirectory": filepath.Join(dataDir, RegistryDir)}
	}
	return s3Driver, c.s3Params(path.Join("/", c.Prefix, RegistryDir))
}
