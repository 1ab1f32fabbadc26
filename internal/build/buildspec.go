// Package build runs CodeBuild buildspec.yml phases (versions 0.2 and 0.1).
package build

import (
	"fmt"
	"regexp"
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
		return &specfile.Error{File: FileName, Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%q must be yes or no", n.Value)}
	}
	return nil
}

// FileName is the default buildspec path.
const FileName = "buildspec.yml"

// Parse reads a buildspec; file names it in errors.
func Parse(file string, data []byte) (*Spec, error) {
	var s Spec
	doc, err := specfile.Decode(file, data, &s)
	if err != nil {
		return nil, err
	}
	if s.Version != "0.2" && s.Version != "0.1" {
		n := specfile.NodeAt(doc, "version")
		return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: "version", Message: fmt.Sprintf("version %q is not a buildspec version; use version: 0.2 (0.1 runs each command in a shell of its own)", s.Version)}
	}
	for _, p := range []struct {
		name string
		ph   *Phase
	}{{"install", s.Phases.Install}, {"pre_build", s.Phases.PreBuild}, {"build", s.Phases.Build}, {"post_build", s.Phases.PostBuild}} {
		if p.ph != nil && p.ph.OnFailure != "" && p.ph.OnFailure != "ABORT" && p.ph.OnFailure != "CONTINUE" {
			n := specfile.NodeAt(doc, "phases", p.name, "on-failure")
			return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: "phases." + p.name + ".on-failure", Message: fmt.Sprintf("%q must be ABORT or CONTINUE", p.ph.OnFailure)}
		}
	}
	for i, name := range s.Env.ExportedVariables {
		if !envName.MatchString(name) || strings.HasPrefix(name, "CODEBUILD_") {
			n := specfile.NodeAt(doc, "env", "exported-variables", i)
			return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: fmt.Sprintf("env.exported-variables[%d]", i),
				Message: fmt.Sprintf("%q must be a shell variable name (letters, digits, _) not starting with CODEBUILD_", name)}
		}
		// Exported values are stored with the run unsealed and shown to
		// anyone who can read it; CodeBuild refuses exporting secrets too.
		for _, section := range []string{"secrets-manager", "parameter-store"} {
			refs := s.Env.SecretsManager
			if section == "parameter-store" {
				refs = s.Env.ParameterStore
			}
			if _, ok := refs[name]; ok {
				n := specfile.NodeAt(doc, "env", "exported-variables", i)
				return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: fmt.Sprintf("env.exported-variables[%d]", i),
					Message: fmt.Sprintf("%q comes from env.%s and cannot be exported: exported variables are stored with the run in plain text; have the later action read the secret itself", name, section)}
			}
		}
	}
	for group, r := range s.Reports {
		if r.FileFormat != "" && r.FileFormat != "JUNITXML" {
			n := specfile.NodeAt(doc, "reports", group, "file-format")
			return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: "reports." + group + ".file-format",
				Message: fmt.Sprintf("%q is not supported; Slipway reads JUNITXML", r.FileFormat)}
		}
	}
	for _, section := range []string{"secrets-manager", "parameter-store"} {
		refs := s.Env.SecretsManager
		if section == "parameter-store" {
			refs = s.Env.ParameterStore
		}
		for name, ref := range refs {
			if _, err := secret.ParseRef(ref); err != nil {
				n := specfile.NodeAt(doc, "env", section, name)
				return nil, &specfile.Error{File: file, Line: n.Line, Column: n.Column, Field: "env." + section + "." + name, Message: err.Error()}
			}
		}
	}
	return &s, nil
}
