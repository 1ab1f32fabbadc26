package build

import (
	"strings"
	"testing"
)

// TestParseRefusesExportingSecrets: exported variables are stored with the
// run in plain text, so one that names a secret is refused up front, as
// CodeBuild refuses it.
func TestParseRefusesExportingSecrets(t *testing.T) {
	const env = "version: 0.2\nenv:\n  variables: {PLAIN: x}\n" +
		"  secrets-manager: {DB_PASSWORD: 'arn:aws:secretsmanager:r:1:secret:db:password'}\n" +
		"  parameter-store: {API_KEY: /shop/api-key}\n"
	cases := []struct {
		name     string
		exported string
		want     string // "" means the buildspec parses
	}{
		{"plain variable", "[PLAIN, IMAGE_TAG]", ""},
		{"secrets-manager variable", "[PLAIN, DB_PASSWORD]",
			`buildspec.yml:6:31: env.exported-variables[1]: "DB_PASSWORD" comes from env.secrets-manager and cannot be exported: exported variables are stored with the run in plain text`},
		{"parameter-store variable", "[API_KEY]",
			`buildspec.yml:6:24: env.exported-variables[0]: "API_KEY" comes from env.parameter-store and cannot be exported: exported variables are stored with the run in plain text`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(FileName, []byte(env+"  exported-variables: "+c.exported+"\n"))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
