package deploy

import (
	"errors"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestResumable(t *testing.T) {
	cases := []struct {
		strategy, phase, state string
		want                   bool
	}{
		{"blue-green", "Install", store.DeployInProgress, true},
		{"blue-green", "AllowTestTraffic", store.DeployInProgress, true},
		{"blue-green", "AllowTraffic", store.DeployInProgress, true},
		{"blue-green", "Created", store.DeployInProgress, false},       // green not placed yet
		{"blue-green", "BeforeInstall", store.DeployInProgress, false}, // a hook was running
		{"blue-green", "AfterAllowTestTraffic", store.DeployInProgress, false},
		{"blue-green", "AfterAllowTraffic", store.DeployInProgress, false},
		{"blue-green", "BlueKept", store.DeployCompleted, false}, // done: only its termination wait resumes
		{"rolling", "Rolling", store.DeployInProgress, true},
		{"rolling", "Created", store.DeployInProgress, false},
		{"rolling", "Rolling", store.DeployRolledBack, false},
	}
	for _, c := range cases {
		d := store.Deployment{Strategy: c.strategy, Phase: c.phase, State: c.state}
		if got := resumable(d); got != c.want {
			t.Errorf("%s in %s (%s): resumable %v, want %v", c.strategy, c.phase, c.state, got, c.want)
		}
	}
}

func TestResumedGreen(t *testing.T) {
	d := store.Deployment{FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2}
	blue := store.TaskSet{Group: "tg1", Family: "web", Revision: 1, Desired: 2}
	green := store.TaskSet{Group: "tg2", Family: "web", Revision: 2, Desired: 2}
	other := store.TaskSet{Group: "tg2", Family: "web", Revision: 3, Desired: 2}
	cases := []struct {
		name string
		sets []store.TaskSet
		ok   bool
	}{
		{"blue and green", []store.TaskSet{blue, green}, true},
		{"green listed first", []store.TaskSet{green, blue}, true},
		{"killed before green was placed", []store.TaskSet{blue}, false},
		{"another deployment's green", []store.TaskSet{blue, other}, false},
		{"blue gone", []store.TaskSet{green}, false},
	}
	for _, c := range cases {
		got, err := resumedGreen(d, store.Layout{Sets: c.sets})
		var rb errRollback
		switch {
		case c.ok && (err != nil || got != green):
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, green)
		case !c.ok && !errors.As(err, &rb):
			t.Errorf("%s: %+v, %v; want a rollback", c.name, got, err)
		}
	}
	// Blue and green of the same revision cannot be told apart.
	same := d
	same.ToRevision = 1
	if _, err := resumedGreen(same, store.Layout{Sets: []store.TaskSet{blue, {Group: "tg2", Family: "web", Revision: 1, Desired: 2}}}); !errors.As(err, new(errRollback)) {
		t.Errorf("the same revision on both sides: %v, want a rollback", err)
	}
}
