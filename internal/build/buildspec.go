// Package build runs CodeBuild buildspec.yml phases (versions 0.2 and 0.1).
package build

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/specfile"
	"gopkg.in/yaml.v3"
)

// Spec is a parsed buildspec.yml.
type Spec struct {
	Version   string            `yaml:"version"`
	RunAs     string            `yaml:"run-as"`
	Proxy     map[string]any    `yaml:"proxy"`
	Env       Env               `yaml:"env"`
	Phases    Phases            `yaml:"phases"`
	Artifacts *Artifacts        `yaml:"artifacts"`
	Reports   map[string]Report `yaml:"reports"`
	Cache     *struct {
		Paths []string `yaml:"paths"`
	} `yaml:"cache"`
}

// Env is the buildspec env section.
type Env struct {
	Shell               string            `yaml:"shell"`
	Variables           map[string]string `yaml:"variables"`
	ParameterStore      map[string]string `yaml:"parameter-store"`
	SecretsManager      map[string]string `yaml:"secrets-manager"`
	ExportedVariables   []string          `yaml:"exported-variables"`
	GitCredentialHelper string            `yaml:"git-credential-helper"`
}

// Phases in the order they run.
type Phases struct {
	Install   *Phase `yaml:"install"`
	PreBuild  *Phase `yaml:"pre_build"`
	Build     *Phase `yaml:"build"`
	PostBuild *Phase `yaml:"post_build"`
}

// Phase is one phase's commands.
type Phase struct {
	RunAs           string         `yaml:"run-as"`
	OnFailure       string         `yaml:"on-failure"`
	RuntimeVersions map[string]any `yaml:"runtime-versions"`
	Commands        []string       `yaml:"commands"`
	Finally         []string       `yaml:"finally"`
}

// Artifacts says which files become the action's output artifact.
type Artifacts struct {
	Files              []string             `yaml:"files"`
	Name               string               `yaml:"name"`
	BaseDirectory      string               `yaml:"base-directory"`
	DiscardPaths       YesNo                `yaml:"discard-paths"`
	SecondaryArtifacts map[string]Artifacts `yaml:"secondary-artifacts"`
	EnableSymlinks     YesNo                `yaml:"enable-symlinks"`
}

// Report is one report group: JUnit XML files to read after the build.
type Report struct {
	Files         []string `yaml:"files"`
	BaseDirectory string   `yaml:"base-directory"`
	DiscardPaths  YesNo    `yaml:"discard-paths"`
	FileFormat    string   `yaml:"file-format"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// YesNo accepts buildspec's yes/no as well as true/false.
type YesNo bool

// UnmarshalYAML reads yes, no, true or false.
func (y *YesNo) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "yes", "true", "Yes", "True":
		*y = true
	case "no", "false", "No", "False", "":
		*y = false
	default:
		// Decode puts in the name of the file being read.
		return &specfile.Error{File: FileName, Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%q must be yes or no", n.Value)}
	}
	return nil
}

// FileName is the default buildspec path.
const FileName = "buildspec.yml"

// onFailure are the values a phase's on-failure may take.
var onFailure = []string{"ABORT", "CONTINUE"}

// Parse reads a buildspec; file names it in errors. Every problem found is
// reported at once, as specfile.Errors (one line each, in file order).
func Parse(file string, data []byte) (*Spec, error) {
	var s Spec
	doc, err := specfile.Decode(file, data, &s)
	if doc == nil {
		return nil, err
	}
	r := specfile.NewReport(file, doc, err)
	if s.Version != "0.2" && s.Version != "0.1" {
		r.Addf([]any{"version"}, "version %q is not a buildspec version; use version: 0.2 (0.1 runs each command in a shell of its own)", s.Version)
	}
	for _, p := range []struct {
		name string
		ph   *Phase
	}{{"install", s.Phases.Install}, {"pre_build", s.Phases.PreBuild}, {"build", s.Phases.Build}, {"post_build", s.Phases.PostBuild}} {
		if p.ph != nil && p.ph.OnFailure != "" && !slices.Contains(onFailure, p.ph.OnFailure) {
			r.Addf([]any{"phases", p.name, "on-failure"}, "%s", specfile.Unknown(fmt.Sprintf("%q must be ABORT or CONTINUE", p.ph.OnFailure), p.ph.OnFailure, onFailure, ""))
		}
	}
	for i, name := range s.Env.ExportedVariables {
		if !envName.MatchString(name) || strings.HasPrefix(name, "CODEBUILD_") {
			r.Addf([]any{"env", "exported-variables", i}, "%q must be a shell variable name (letters, digits, _) not starting with CODEBUILD_", name)
			continue
		}
		// Exported values are stored with the run unsealed and shown to
		// anyone who can read it; CodeBuild refuses exporting secrets too.
		for _, section := range []string{"secrets-manager", "parameter-store"} {
			refs := s.Env.SecretsManager
			if section == "parameter-store" {
				refs = s.Env.ParameterStore
			}
			if _, ok := refs[name]; ok {
				r.Addf([]any{"env", "exported-variables", i},
					"%q comes from env.%s and cannot be exported: exported variables are stored with the run in plain text; have the later action read the secret itself", name, section)
			}
		}
	}
	for group, rep := range s.Reports {
		if rep.FileFormat != "" && rep.FileFormat != "JUNITXML" {
			r.Addf([]any{"reports", group, "file-format"}, "%q is not supported; Slipway reads JUNITXML", rep.FileFormat)
		}
	}
	for _, section := range []string{"secrets-manager", "parameter-store"} {
		refs := s.Env.SecretsManager
		if section == "parameter-store" {
			refs = s.Env.ParameterStore
		}
		for name, ref := range refs {
			if _, err := secret.ParseRef(ref); err != nil {
				r.Addf([]any{"env", section, name}, "%s", err.Error())
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return &s, nil
}
