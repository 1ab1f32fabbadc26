package container

import (
	"maps"
	"testing"
)

func TestLabels(t *testing.T) {
	cases := []struct {
		name              string
		app, installation string
		more              []string
		want              map[string]string
	}{
		{"app alone", "shop", "", nil, map[string]string{LabelApp: "shop"}},
		{"with the installation", "shop", "inst1", nil, map[string]string{LabelApp: "shop", LabelInstallation: "inst1"}},
		{"with pairs", "shop", "inst1", []string{"slipway.run", "7", "slipway.action", "build"}, map[string]string{LabelApp: "shop", LabelInstallation: "inst1", "slipway.run": "7", "slipway.action": "build"}},
		{"an odd pair is dropped", "shop", "", []string{"slipway.run"}, map[string]string{LabelApp: "shop"}},
	}
	for _, c := range cases {
		if got := Labels(c.app, c.installation, c.more...); !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
