package blob

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name string
		raw  string
		env  func(string) string
		want Config
	}{
		{"empty is the data directory", "", env(), Config{}},
		{"blank is the data directory", "  ", env(), Config{}},
		{"bucket only", "s3://slipway", env("AWS_REGION", "eu-west-1"),
			Config{Bucket: "slipway", Region: "eu-west-1"}},
		{"prefix trimmed", "s3://slipway/a/b/", env("AWS_REGION", "eu-west-1"),
			Config{Bucket: "slipway", Prefix: "a/b", Region: "eu-west-1"}},
		{"query wins over environment",
			"s3://slipway/p?region=us-west-2&endpoint=http://127.0.0.1:9000&path-style=false",
			env("AWS_REGION", "eu-west-1", "AWS_ENDPOINT_URL_S3", "http://other:1"),
			Config{Bucket: "slipway", Prefix: "p", Region: "us-west-2", Endpoint: "http://127.0.0.1:9000"}},
		{"endpoint defaults path style and region", "s3://slipway/p?endpoint=https://minio.internal:9000/",
			env(), Config{Bucket: "slipway", Prefix: "p", Region: "us-east-1", Endpoint: "https://minio.internal:9000", PathStyle: true}},
		{"AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL", "s3://slipway",
			env("AWS_ENDPOINT_URL", "http://b:2", "AWS_ENDPOINT_URL_S3", "http://a:1", "AWS_DEFAULT_REGION", "ap-south-1"),
			Config{Bucket: "slipway", Region: "ap-south-1", Endpoint: "http://a:1", PathStyle: true}},
		{"AWS_ENDPOINT_URL", "s3://slipway", env("AWS_ENDPOINT_URL", "http://b:2"),
			Config{Bucket: "slipway", Region: "us-east-1", Endpoint: "http://b:2", PathStyle: true}},
		{"AWS_REGION before AWS_DEFAULT_REGION", "s3://slipway",
			env("AWS_REGION", "eu-west-1", "AWS_DEFAULT_REGION", "eu-west-2"),
			Config{Bucket: "slipway", Region: "eu-west-1"}},
		{"scheme in capitals", "S3://slipway?region=eu-west-1", env(),
			Config{Bucket: "slipway", Region: "eu-west-1"}},
		{"dotted bucket", "s3://my.bucket-1/x?region=eu-west-1", env(),
			Config{Bucket: "my.bucket-1", Prefix: "x", Region: "eu-west-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.raw, tt.env)
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parse(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
			if got.S3() {
				again, err := parse(got.String(), env())
				if err != nil || !reflect.DeepEqual(again, got) {
					t.Fatalf("String() %q parses to %+v, %v; want %+v", got.String(), again, err, got)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		raw  string
		want []string // each must appear in the error
	}{
		{"/var/lib/slipway", []string{"want s3://BUCKET/PREFIX", "leave it empty"}},
		{"file:///data", []string{"want s3://BUCKET/PREFIX"}},
		{"https://s3.amazonaws.com/bucket", []string{"want s3://BUCKET/PREFIX"}},
		{"s3://AKIAEXAMPLE:hunter2secret@bucket/p", []string{"credentials do not go in the URL", "AWS_ACCESS_KEY_ID"}},
		{"s3://user@bucket/p", []string{"credentials do not go in the URL"}},
		{"s3://bucket/p?secret-key=hunter2secret", []string{"parameter secret-key", "credentials do not go in the URL"}},
		{"s3://bucket/p?access-key=AKIA", []string{"credentials do not go in the URL"}},
		{"s3://bucket/p?endpoint=http://AKIA:hunter2secret@127.0.0.1:9000", []string{"endpoint: credentials do not go in the URL"}},
		{"s3:///prefix", []string{"no bucket"}},
		{"s3://", []string{"no bucket"}},
		{"s3://My_Bucket/p", []string{`bucket "My_Bucket"`, "lowercase letters"}},
		{"s3://ab/p", []string{`bucket "ab"`, "3 to 63"}},
		{"s3://bucket:9000/p", []string{"has a port", "?endpoint=http://HOST:PORT"}},
		{"s3://bucket/a//b", []string{`prefix "a//b"`}},
		{"s3://bucket/a/../b", []string{`prefix "a/../b"`}},
		{"s3://bucket/a b", []string{`prefix "a b"`}},
		{"s3://bucket/p#frag", []string{"fragment"}},
		{"s3://bucket/p?regoin=eu-west-1", []string{`unknown parameter "regoin"`, "region, endpoint and path-style"}},
		{"s3://bucket/p?region=", []string{"region is empty"}},
		{"s3://bucket/p?region=a&region=b", []string{"region is given 2 times"}},
		{"s3://bucket/p?path-style=maybe", []string{`path-style="maybe"`, "true or false"}},
		{"s3://bucket/p?endpoint=127.0.0.1:9000", []string{"endpoint", "want http://HOST[:PORT]"}},
		{"s3://bucket/p?endpoint=ftp://h", []string{"endpoint", "want http://HOST[:PORT]"}},
		{"s3://bucket/p?endpoint=http://h:9000/bucket", []string{"endpoint", "only scheme, host and port"}},
		{"s3://bucket/p?endpoint=http://", []string{"has no host"}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := parse(tt.raw, func(string) string { return "" })
			if err == nil {
				t.Fatalf("parse(%q) succeeded", tt.raw)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "blob store URL: ") {
				t.Errorf("error %q does not say it is about the blob store URL", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "hunter2secret") {
				t.Errorf("error %q repeats the secret", msg)
			}
		})
	}
}

// TestParseRegion covers the last resort, the shared config's profile, and
// the error when there is none.
func TestParseRegion(t *testing.T) {
	dir := t.TempDir()
	config := dir + "/config"
	writeFile(t, config, "[default]\nregion = ca-central-1\n\n[profile other]\nregion = sa-east-1\n")
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SDK_LOAD_CONFIG"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", config)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	c, err := Parse("s3://slipway/p")
	if err != nil || c.Region != "ca-central-1" {
		t.Fatalf("default profile: %+v, %v; want region ca-central-1", c, err)
	}
	t.Setenv("AWS_PROFILE", "other")
	if c, err = Parse("s3://slipway/p"); err != nil || c.Region != "sa-east-1" {
		t.Fatalf("AWS_PROFILE=other: %+v, %v; want region sa-east-1", c, err)
	}
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	_, err = Parse("s3://slipway/p")
	if err == nil || !strings.Contains(err.Error(), "?region=REGION") || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("no region anywhere: %v; want an error naming ?region= and AWS_REGION", err)
	}
}

func TestRegistryStorage(t *testing.T) {
	driver, params := Config{}.RegistryStorage("/var/lib/slipway")
	if driver != "filesystem" || !reflect.DeepEqual(params, map[string]any{"rootdirectory": "/var/lib/slipway/registry"}) {
		t.Errorf("filesystem: %s %v", driver, params)
	}
	c := Config{Bucket: "slipway", Prefix: "prod/a", Region: "us-east-1", Endpoint: "http://127.0.0.1:9000", PathStyle: true}
	driver, params = c.RegistryStorage("/var/lib/slipway")
	want := map[string]any{
		"bucket": "slipway", "region": "us-east-1", "rootdirectory": "/prod/a/registry",
		"regionendpoint": "http://127.0.0.1:9000", "forcepathstyle": true, "secure": false, "v4auth": true,
	}
	if driver != "s3aws" || !reflect.DeepEqual(params, want) {
		t.Errorf("s3: %s %v, want s3aws %v", driver, params, want)
	}
	for k := range params {
		if strings.Contains(k, "key") || strings.Contains(k, "token") {
			t.Errorf("registry parameters carry %s: credentials come from the environment", k)
		}
	}
	driver, params = Config{Bucket: "slipway", Region: "eu-west-1"}.RegistryStorage("")
	if driver != "s3aws" || params["rootdirectory"] != "/registry" || params["secure"] != true || params["regionendpoint"] != nil {
		t.Errorf("AWS without prefix: %s %v", driver, params)
	}
}
