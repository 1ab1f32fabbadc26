package store

import (
	"context"
	"strings"
	"testing"
)

// TestChannelTargetsAndDeliveryErrorsHideURLs: whatever a caller (or an
// older version) put in a channel's target or a delivery's last error, the
// store neither keeps nor returns a URL's path, query or user info; the
// web UI and the API read these fields straight from here.
func TestChannelTargetsAndDeliveryErrorsHideURLs(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db, err := s.reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.CreateApp(ctx, App{Name: "shop", RegistryRepo: "shop"}); err != nil {
			t.Fatal(err)
		}
		const secretPath = "T1/B2/slack-token-1"
		if err := db.PutChannel(ctx, Channel{App: "shop", Name: "new", Type: "slack", Events: []string{"run.failed"},
			Target: "https://hooks.slack.com/services/" + secretPath}, []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		// A row as an older version may have left it.
		if _, err := db.write.ExecContext(ctx, `INSERT INTO notify_channels(app, name, type, events, target, sealed, created_at, updated_at) VALUES ('shop', 'old', 'webhook', '[]', ?, ?, 0, 0)`,
			"https://u:pw-9@ci.example/in?token=tok-9", []byte{0}); err != nil {
			t.Fatal(err)
		}
		if err := db.EnqueueDeliveries(ctx, []Delivery{{App: "shop", Channel: "new", Event: "run.failed", Payload: "{}"}, {App: "shop", Channel: "old", Event: "run.failed", Payload: "{}"}}); err != nil {
			t.Fatal(err)
		}
		ds, err := db.ListDeliveries(ctx, "shop", Page{})
		if err != nil || len(ds) != 2 {
			t.Fatalf("%v %+v", err, ds)
		}
		byChannel := map[string]Delivery{}
		for _, d := range ds {
			byChannel[d.Channel] = d
		}
		d := byChannel["new"]
		d.State, d.Attempts, d.LastError = DeliveryFailed, 1, `Post "https://hooks.slack.com/services/`+secretPath+`": dial tcp: refused`
		if err := db.UpdateDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := db.write.ExecContext(ctx, `UPDATE notify_deliveries SET last_error = ? WHERE id = ?`,
			"POST https://u:pw-9@ci.example/in?token=tok-9 answered 500", byChannel["old"].ID); err != nil {
			t.Fatal(err)
		}

		var shown []string
		chans, err := db.ListChannels(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chans {
			shown = append(shown, c.Target)
		}
		c, _, err := db.SealedChannel(ctx, "shop", "old")
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, c.Target)
		if ds, err = db.ListDeliveries(ctx, "shop", Page{}); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			shown = append(shown, d.LastError)
		}
		if ds, err = db.DueDeliveries(ctx, ds[0].CreatedAt.AddDate(1, 0, 0), 10); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			shown = append(shown, d.LastError)
		}
		var stored string
		if err := db.read.QueryRowContext(ctx, `SELECT string_agg(target, ' ') FROM notify_channels WHERE name = 'new'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		shown = append(shown, stored)
		if err := db.read.QueryRowContext(ctx, `SELECT string_agg(last_error, ' ') FROM notify_deliveries WHERE channel = 'new'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		shown = append(shown, stored)

		all := strings.Join(shown, "\n")
		for _, s := range []string{secretPath, "pw-9", "tok-9", "/in"} {
			if strings.Contains(all, s) {
				t.Errorf("%q shown or stored:\n%s", s, all)
			}
		}
		for _, want := range []string{"https://hooks.slack.com/…", "https://ci.example/…", "dial tcp: refused", "answered 500"} {
			if !strings.Contains(all, want) {
				t.Errorf("%q missing:\n%s", want, all)
			}
		}
	})
}
