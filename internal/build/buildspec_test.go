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

// TestParseReportsEveryMistake: a buildspec's mistakes come back together,
// in file order, each at its line and column and with the name meant
// when a close one exists.
func TestParseReportsEveryMistake(t *testing.T) {
	cases := []struct {
		name, file, yaml string
		want             []string
	}{
		{"misspelt phase", FileName, "version: 0.2\nphases:\n  biuld:\n    commands: [make]\n",
			[]string{`buildspec.yml:3:3: phases.biuld: unknown key "biuld"; did you mean build? (allowed here: install, pre_build, build, post_build)`}},
		{"misspelt phase key", FileName, "version: 0.2\nphases:\n  build:\n    comands: [make]\n",
			[]string{`buildspec.yml:4:5: phases.build.comands: unknown key "comands"; did you mean commands? (allowed here: run-as, on-failure, runtime-versions, commands, finally)`}},
		{"no close key", FileName, "version: 0.2\nstages: []\n",
			[]string{`buildspec.yml:2:1: stages: unknown key "stages"; allowed here: version, run-as, proxy, env, phases, artifacts, reports, cache`}},
		{"on-failure case", FileName, "version: 0.2\nphases:\n  build: {commands: [x], on-failure: abort}\n",
			[]string{`buildspec.yml:3:38: phases.build.on-failure: "abort" must be ABORT or CONTINUE; did you mean ABORT?`}},
		{"yes/no in a file of another name", "ci/buildspec-test.yml", "version: 0.2\nartifacts:\n  files: ['**/*']\n  discard-paths: maybe\n",
			[]string{`ci/buildspec-test.yml:4:18: artifacts.discard-paths: "maybe" must be yes or no`}},
		{"all at once", FileName, "version: 0.3\n" +
			"env:\n" +
			"  variabels: {A: 1}\n" +
			"  secrets-manager: {DB: 'arn:aws:s3:::b'}\n" +
			"  exported-variables: [CODEBUILD_X, DB]\n" +
			"phases:\n" +
			"  pre-build: {commands: [x]}\n" +
			"  build: {commands: [x], on-failure: RETRY}\n" +
			"reports:\n" +
			"  unit: {files: [r.xml], file-format: CUCUMBERJSON}\n",
			[]string{
				`buildspec.yml:1:10: version: version "0.3" is not a buildspec version; use version: 0.2`,
				`buildspec.yml:3:3: env.variabels: unknown key "variabels"; did you mean variables? (allowed here: shell, variables, `,
				`buildspec.yml:4:25: env.secrets-manager.DB: "arn:aws:s3:::b": only Secrets Manager and SSM`,
				`buildspec.yml:5:24: env.exported-variables[0]: "CODEBUILD_X" must be a shell variable name`,
				`buildspec.yml:5:37: env.exported-variables[1]: "DB" comes from env.secrets-manager and cannot be exported`,
				`buildspec.yml:7:3: phases.pre-build: unknown key "pre-build"; did you mean pre_build? (allowed here: `,
				`buildspec.yml:8:38: phases.build.on-failure: "RETRY" must be ABORT or CONTINUE`,
				`buildspec.yml:10:39: reports.unit.file-format: "CUCUMBERJSON" is not supported; Slipway reads JUNITXML`,
			}},
		{"a wrong value leaves the rest checked", FileName, "version: [0.2]\nphases:\n  build: {commands: [x], on-failure: NEVER}\n",
			[]string{
				`buildspec.yml:1:10: version: must be a single value, not a list`,
				`buildspec.yml:3:38: phases.build.on-failure: "NEVER" must be ABORT or CONTINUE`,
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.file, []byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(lines), len(c.want), err)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\n%s\nwant it to start\n%s", i, lines[i], w)
				}
			}
		})
	}
}
