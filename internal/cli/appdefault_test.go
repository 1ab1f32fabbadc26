package cli

import (
	"reflect"
	"testing"
)

func TestAppsOfRemotes(t *testing.T) {
	cases := []struct {
		name, server string
		lines        []string
		want         []string
	}{
		{"origin on the server", "http://127.0.0.1:7070", []string{"remote.origin.url http://127.0.0.1:7070/git/web.git"}, []string{"web"}},
		{"with credentials and no .git", "http://127.0.0.1:7070/", []string{"remote.origin.url http://x:tok@127.0.0.1:7070/git/web"}, []string{"web"}},
		{"another server's", "http://127.0.0.1:7070", []string{"remote.origin.url http://127.0.0.1:7071/git/web.git"}, []string{}},
		{"GitHub beside it", "http://127.0.0.1:7070", []string{"remote.github.url git@github.com:acme/web.git", "remote.slipway.url http://127.0.0.1:7070/git/web.git"}, []string{"web"}},
		{"two apps", "http://127.0.0.1:7070", []string{"remote.a.url http://127.0.0.1:7070/git/web.git", "remote.b.url http://127.0.0.1:7070/git/api.git"}, []string{"api", "web"}},
		{"same app twice", "http://127.0.0.1:7070", []string{"remote.a.url http://127.0.0.1:7070/git/web.git", "remote.b.url http://127.0.0.1:7070/git/web"}, []string{"web"}},
		{"not a repository path", "http://127.0.0.1:7070", []string{"remote.a.url http://127.0.0.1:7070/api/v1/apps", "remote.b.url http://127.0.0.1:7070/git/a/b.git"}, []string{}},
		{"a server under a path", "https://ci.example.com/slipway", []string{"remote.origin.url https://ci.example.com/slipway/git/web.git"}, []string{"web"}},
		{"no remotes", "http://127.0.0.1:7070", []string{""}, []string{}},
	}
	for _, c := range cases {
		if got := appsOfRemotes(c.server, c.lines); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
