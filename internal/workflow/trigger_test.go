package workflow

import (
	"strings"
	"testing"
)

func TestMatchPush(t *testing.T) {
	l := func(s ...string) []string { return s }
	tests := []struct {
		name    string
		push    *PushFilter
		ref     string
		changed []string
		run     bool
		reason  string // a part of the reason when run is false
	}{
		{"on.push not set", nil, "refs/heads/main", l("a.go"), false, "on.push is not set"},
		{"no filters: branch", &PushFilter{}, "refs/heads/main", l("a.go"), true, ""},
		{"no filters: tag", &PushFilter{}, "refs/tags/v1", nil, true, ""},
		{"no filters: other ref", &PushFilter{}, "refs/pull/1/head", nil, false, "neither a branch"},
		{"branches: exact", &PushFilter{Branches: l("main")}, "refs/heads/main", nil, true, ""},
		{"branches: other branch", &PushFilter{Branches: l("main")}, "refs/heads/dev", nil, false, "on.push.branches"},
		{"branches only: tags start nothing", &PushFilter{Branches: l("main")}, "refs/tags/v1", nil, false, "only branch filters"},
		{"branches-ignore only: tags start nothing", &PushFilter{BranchesIgnore: l("dev")}, "refs/tags/v1", nil, false, "only branch filters"},
		{"tags only: branches start nothing", &PushFilter{Tags: l("v*")}, "refs/heads/main", nil, false, "only tag filters"},
		{"tags-ignore only: branches start nothing", &PushFilter{TagsIgnore: l("v*")}, "refs/heads/main", nil, false, "only tag filters"},
		{"tags: v*", &PushFilter{Tags: l("v*")}, "refs/tags/v1.2.3", nil, true, ""},
		{"tags: no match", &PushFilter{Tags: l("v*")}, "refs/tags/release-1", nil, false, "on.push.tags"},
		{"tags-ignore: ignored", &PushFilter{TagsIgnore: l("*-rc*")}, "refs/tags/v2-rc1", nil, false, "on.push.tags-ignore"},
		{"tags-ignore: kept", &PushFilter{TagsIgnore: l("*-rc*")}, "refs/tags/v2", nil, true, ""},
		{"branches and tags: branch", &PushFilter{Branches: l("main"), Tags: l("v*")}, "refs/heads/main", nil, true, ""},
		{"branches and tags: tag", &PushFilter{Branches: l("main"), Tags: l("v*")}, "refs/tags/v3", nil, true, ""},
		{"branches and tags: other tag", &PushFilter{Branches: l("main"), Tags: l("v*")}, "refs/tags/x", nil, false, "on.push.tags"},
		{"branches-ignore: ignored", &PushFilter{BranchesIgnore: l("dependabot/**")}, "refs/heads/dependabot/npm/x", nil, false, "on.push.branches-ignore"},
		{"branches-ignore: kept", &PushFilter{BranchesIgnore: l("dependabot/**")}, "refs/heads/main", nil, true, ""},
		{"feature/* matches one level", &PushFilter{Branches: l("feature/*")}, "refs/heads/feature/login", nil, true, ""},
		{"feature/* does not match two levels", &PushFilter{Branches: l("feature/*")}, "refs/heads/feature/a/b", nil, false, "on.push.branches"},
		{"feature/** matches two levels", &PushFilter{Branches: l("feature/**")}, "refs/heads/feature/a/b", nil, true, ""},
		{"* does not match a slash", &PushFilter{Branches: l("*")}, "refs/heads/feature/a", nil, false, "on.push.branches"},
		{"** matches everything", &PushFilter{Branches: l("**")}, "refs/heads/feature/a", nil, true, ""},
		{"negation after a match excludes", &PushFilter{Branches: l("releases/**", "!releases/**-alpha")}, "refs/heads/releases/10-alpha", nil, false, "on.push.branches"},
		{"negation leaves others", &PushFilter{Branches: l("releases/**", "!releases/**-alpha")}, "refs/heads/releases/10", nil, true, ""},
		{"a later positive pattern includes again", &PushFilter{Branches: l("releases/**", "!releases/**-alpha", "releases/1-alpha")}, "refs/heads/releases/1-alpha", nil, true, ""},
		{"negation first has nothing to exclude", &PushFilter{Branches: l("!main", "ma*")}, "refs/heads/main", nil, true, ""},
		{"tag negation", &PushFilter{Tags: l("v*", "!v*-beta")}, "refs/tags/v1-beta", nil, false, "on.push.tags"},
		{"+ and [] in a tag pattern", &PushFilter{Tags: l("v[12].[0-9]+.[0-9]+")}, "refs/tags/v1.10.1", nil, true, ""},
		{"+ and [] reject", &PushFilter{Tags: l("v[12].[0-9]+.[0-9]+")}, "refs/tags/v3.0.0", nil, false, "on.push.tags"},
		{"paths: a match", &PushFilter{Paths: l("src/**")}, "refs/heads/main", l("README.md", "src/a/b.go"), true, ""},
		{"paths: no match", &PushFilter{Paths: l("src/**")}, "refs/heads/main", l("README.md", "docs/x.md"), false, "no changed file matches on.push.paths"},
		{"paths: *.js only at the root", &PushFilter{Paths: l("*.js")}, "refs/heads/main", l("lib/app.js"), false, "on.push.paths"},
		{"paths: **.js anywhere", &PushFilter{Paths: l("**.js")}, "refs/heads/main", l("lib/app.js"), true, ""},
		{"paths: negation per file", &PushFilter{Paths: l("sub/**", "!sub/docs/**")}, "refs/heads/main", l("sub/docs/a.md"), false, "on.push.paths"},
		{"paths-ignore: all ignored", &PushFilter{PathsIgnore: l("docs/**", "**.md")}, "refs/heads/main", l("docs/a.txt", "README.md"), false, "every changed file is ignored by on.push.paths-ignore"},
		{"paths-ignore: one file left", &PushFilter{PathsIgnore: l("docs/**")}, "refs/heads/main", l("docs/a.md", "main.go"), true, ""},
		{"paths with branches: both must pass", &PushFilter{Branches: l("main"), Paths: l("src/**")}, "refs/heads/main", l("docs/a.md"), false, "on.push.paths"},
		{"branches fail before paths", &PushFilter{Branches: l("main"), Paths: l("src/**")}, "refs/heads/dev", l("src/a.go"), false, "on.push.branches"},
		{"paths are ignored for tags", &PushFilter{Tags: l("v*"), Paths: l("src/**")}, "refs/tags/v1", l("docs/a.md"), true, ""},
		{"paths-ignore is ignored for tags", &PushFilter{PathsIgnore: l("**")}, "refs/tags/v1", l("a"), true, ""},
		{"paths only: tags still run", &PushFilter{Paths: l("src/**")}, "refs/tags/v1", nil, true, ""},
		{"no changed files: paths", &PushFilter{Paths: l("**")}, "refs/heads/main", []string{}, false, "changed no files"},
		{"no changed files: paths-ignore", &PushFilter{PathsIgnore: l("docs/**")}, "refs/heads/main", []string{}, false, "changed no files"},
		{"nil changed files: paths", &PushFilter{Paths: l("src/**")}, "refs/heads/main", nil, false, "changed no files"},
		{"no changed files without path filters", &PushFilter{}, "refs/heads/main", []string{}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &Workflow{Push: tc.push}
			run, reason := w.MatchPush(tc.ref, tc.changed)
			if run != tc.run {
				t.Fatalf("run = %v (%q), want %v", run, reason, tc.run)
			}
			if run && reason != "" {
				t.Errorf("reason = %q, want none", reason)
			}
			if !run && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tc.reason)
			}
		})
	}
}

// TestPatterns follows the filter pattern cheat sheet of GitHub's workflow syntax documentation.
func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"feature/*", []string{"feature/my-branch", "feature/your-branch"}, []string{"feature/a/b", "feature", "features/x"}},
		{"feature/**", []string{"feature/beta-a/my-branch", "feature/your-branch", "feature/mona/the/octocat"}, []string{"feature", "featurex/a"}},
		{"main", []string{"main"}, []string{"main2", "xmain", "Main"}},
		{"*", []string{"main", "releases"}, []string{"feature/a"}},
		{"**", []string{"all/the/branches", "every/tag", "x"}, nil},
		{"*feature", []string{"mona-feature", "feature", "ver-10-feature"}, []string{"feature-x"}},
		{"v2*", []string{"v2", "v2.0", "v2.9"}, []string{"v3", "v2/x"}},
		{"v[12].[0-9]+.[0-9]+", []string{"v1.10.1", "v2.0.0"}, []string{"v3.0.0", "v1.a.1", "v1..1"}},
		{"*.jsx?", []string{"page.js", "page.jsx"}, []string{"page.jsxx", "a/page.js"}},
		{"*.js", []string{"app.js", "index.js"}, []string{"js/index.js", "app.jsx"}},
		{"**.js", []string{"index.js", "js/index.js", "src/js/app.js"}, []string{"index.ts"}},
		{"docs/*", []string{"docs/README.md", "docs/file.txt"}, []string{"docs/a/b.md", "README.md"}},
		{"docs/**", []string{"docs/README.md", "docs/mona/octocat.txt"}, []string{"README.md", "mydocs/a"}},
		{"docs/**/*.md", []string{"docs/README.md", "docs/mona/hello-world.md", "docs/a/markdown/file.md"}, []string{"docs/a.txt", "README.md"}},
		{"**/docs/**", []string{"docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/space.doc"}, []string{"mydocs/a"}},
		{"**/README.md", []string{"README.md", "js/README.md"}, []string{"README.txt", "js/xREADME.md"}},
		{"**/*src/**", []string{"a/src/app.js", "my-src/code/js/app.js"}, []string{"src"}},
		{"**/*-post.md", []string{"my-post.md", "path/their-post.md"}, []string{"post.md"}},
		{"**/migrate-*.sql", []string{"migrate-10909.sql", "db/migrate-v1.0.sql", "db/sept/migrate-v1.sql"}, []string{"db/migrate.sql"}},
		{`release\*`, []string{"release*"}, []string{"release1"}},
		{`a\+b`, []string{"a+b"}, []string{"aab"}},
		{"colou?r", []string{"color", "colour"}, []string{"colouur"}},
		{"v1.0", []string{"v1.0"}, []string{"v1x0"}},
		{"[ab]x", []string{"ax", "bx"}, []string{"cx", "abx"}},
	}
	for _, tc := range tests {
		re := compilePattern(tc.pattern)
		for _, s := range tc.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q (%s)", tc.pattern, s, re)
			}
		}
		for _, s := range tc.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q matches %q (%s)", tc.pattern, s, re)
			}
		}
	}

	// Cheat sheet: *.md, !README.md, README* — order decides.
	pats := []string{"*.md", "!README.md", "README*"}
	for s, want := range map[string]bool{"hello.md": true, "README.md": true, "README.doc": true, "docs/hello.md": false} {
		if got := matchPatterns(pats, s); got != want {
			t.Errorf("%q against %q = %v, want %v", pats, s, got, want)
		}
	}
	pats = []string{"*.md", "!README.md"}
	for s, want := range map[string]bool{"hello.md": true, "README.md": false, "docs/hello.md": false} {
		if got := matchPatterns(pats, s); got != want {
			t.Errorf("%q against %q = %v, want %v", pats, s, got, want)
		}
	}
}
