package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestNotificationChannels(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop", "blog")
		if cs, err := db.ListChannels(ctx, "shop"); err != nil || cs == nil || len(cs) != 0 {
			t.Fatalf("ListChannels of none: %#v, %v", cs, err)
		}
		sealed := []byte{0, 1, 2, 0xfe, 0xff, 'x'}
		from := time.Now()
		for _, c := range []Channel{
			{App: "shop", Name: "ops", Type: "slack", Events: []string{"run.failed", "deployment.rolled_back"}, Target: "#ops"},
			{App: "shop", Name: "audit", Type: "webhook", Events: []string{"run.succeeded"}, Target: "ci.example"},
			{App: "blog", Name: "ops", Type: "email", Events: []string{"run.failed"}, Target: "ops@example.com"},
		} {
			if err := db.PutChannel(ctx, c, append(sealed, c.App...)); err != nil {
				t.Fatal(err)
			}
		}
		to := time.Now()
		cs, err := db.ListChannels(ctx, "shop")
		if err != nil || len(cs) != 2 || cs[0].Name != "audit" || cs[1].Name != "ops" {
			t.Fatalf("ListChannels(shop) = %+v, %v; want audit, ops", cs, err)
		}
		ops := cs[1]
		if ops.App != "shop" || ops.Type != "slack" || !slices.Equal(ops.Events, []string{"run.failed", "deployment.rolled_back"}) || ops.Target != "#ops" ||
			!within(ops.CreatedAt, from, to) || !ops.UpdatedAt.Equal(ops.CreatedAt) {
			t.Fatalf("listed %+v", ops)
		}
		c, key, err := db.SealedChannel(ctx, "shop", "ops")
		if err != nil || !reflect.DeepEqual(c, ops) || !bytes.Equal(key, append(sealed, "shop"...)) {
			t.Fatalf("SealedChannel = %+v, %q, %v; want %+v", c, key, err, ops)
		}
		if _, key, _ := db.SealedChannel(ctx, "blog", "ops"); !bytes.Equal(key, append(sealed, "blog"...)) {
			t.Fatalf("blog's channel of the same name: %q", key)
		}

		// Putting a channel again replaces it, and keeps when it was made.
		time.Sleep(time.Millisecond)
		if err := db.PutChannel(ctx, Channel{App: "shop", Name: "ops", Type: "webhook", Events: []string{"run.started"}, Target: "hooks.example"}, []byte("new")); err != nil {
			t.Fatal(err)
		}
		c, key, err = db.SealedChannel(ctx, "shop", "ops")
		if err != nil || c.Type != "webhook" || !slices.Equal(c.Events, []string{"run.started"}) || c.Target != "hooks.example" || string(key) != "new" ||
			!c.CreatedAt.Equal(ops.CreatedAt) || !c.UpdatedAt.After(ops.UpdatedAt) {
			t.Fatalf("after putting it again: %+v, %q, %v", c, key, err)
		}

		if err := db.DeleteChannel(ctx, "shop", "ops"); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"SealedChannel of the deleted channel": func() error { _, _, err := db.SealedChannel(ctx, "shop", "ops"); return err }(),
			"DeleteChannel again":                  db.DeleteChannel(ctx, "shop", "ops"),
			"DeleteChannel of another app's":       db.DeleteChannel(ctx, "nope", "ops"),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if cs, _ := db.ListChannels(ctx, "shop"); len(cs) != 1 || cs[0].Name != "audit" {
			t.Fatalf("shop's channels left: %+v", cs)
		}
		if cs, _ := db.ListChannels(ctx, "blog"); len(cs) != 1 || cs[0].Type != "email" {
			t.Fatalf("blog's channels: %+v", cs)
		}
	})
}

// The delivery queue: what is enqueued is due at once; a failed attempt
// is due again at its backoff; an ended delivery is never due again.
func TestDeliveryQueue(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop", "blog")
		if next, ok, err := db.NextDeliveryAt(ctx); err != nil || ok || !next.IsZero() {
			t.Fatalf("NextDeliveryAt of an empty queue = %v, %v, %v", next, ok, err)
		}
		if due, err := db.DueDeliveries(ctx, time.Now(), 10); err != nil || due == nil || len(due) != 0 {
			t.Fatalf("DueDeliveries of an empty queue = %#v, %v", due, err)
		}
		if err := db.EnqueueDeliveries(ctx, nil); err != nil {
			t.Fatal(err)
		}
		from := time.Now()
		if err := db.EnqueueDeliveries(ctx, []Delivery{
			{App: "shop", Channel: "ops", Event: "run.failed", Payload: `{"run":1,"text":"ü"}`, State: "ignored", Attempts: 9},
			{App: "shop", Channel: "audit", Event: "run.failed", Payload: `{"run":1}`},
			{App: "blog", Channel: "ops", Event: "deployment.completed", Payload: `{}`},
		}); err != nil {
			t.Fatal(err)
		}
		to := time.Now()
		all, err := db.DueDeliveries(ctx, to, 10)
		if err != nil || len(all) != 3 {
			t.Fatalf("DueDeliveries = %+v, %v", all, err)
		}
		for i, d := range all {
			if (i > 0 && d.ID <= all[i-1].ID) || d.State != DeliveryPending || d.Attempts != 0 || d.LastError != "" || d.EndedAt != nil ||
				!within(d.CreatedAt, from, to) || !d.NextAt.Equal(d.CreatedAt) {
				t.Fatalf("enqueued delivery %d: %+v", i, d)
			}
		}
		ops, audit, blog := all[0], all[1], all[2]
		if ops.App != "shop" || ops.Channel != "ops" || ops.Event != "run.failed" || ops.Payload != `{"run":1,"text":"ü"}` || blog.App != "blog" {
			t.Fatalf("enqueued %+v", all)
		}
		if due, _ := db.DueDeliveries(ctx, from.Add(-time.Second), 10); len(due) != 0 {
			t.Fatalf("due before they were enqueued: %+v", due)
		}
		if due, _ := db.DueDeliveries(ctx, to, 2); len(due) != 2 || due[0].ID != ops.ID || due[1].ID != audit.ID {
			t.Fatalf("the first 2 due: %+v", due)
		}

		// ops fails and is retried in a minute; audit is delivered; blog
		// fails for good.
		at := time.Now().UTC()
		retry := at.Add(time.Minute + 123*time.Nanosecond)
		ops.Attempts, ops.LastError, ops.NextAt = 1, "answered 500", retry
		ended := at.Add(789 * time.Nanosecond)
		audit.State, audit.Attempts, audit.EndedAt = DeliveryDelivered, 1, &ended
		// An error quoting a server that answers in neither UTF-8 nor text.
		blog.State, blog.Attempts, blog.LastError, blog.EndedAt = DeliveryFailed, 4, "smtp: 554 r\xe9ponse\x00", &ended
		for _, d := range []Delivery{ops, audit, blog} {
			if err := db.UpdateDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if due, _ := db.DueDeliveries(ctx, at, 10); len(due) != 0 {
			t.Fatalf("due before the retry: %+v", due)
		}
		next, ok, err := db.NextDeliveryAt(ctx)
		if err != nil || !ok || !next.Equal(retry.Truncate(time.Microsecond)) {
			t.Fatalf("NextDeliveryAt = %v, %v, %v; want %v", next, ok, err, retry.Truncate(time.Microsecond))
		}
		due, err := db.DueDeliveries(ctx, retry, 10)
		ops.NextAt = retry.Truncate(time.Microsecond)
		if err != nil || len(due) != 1 || !reflect.DeepEqual(due[0], ops) {
			t.Fatalf("due at the retry:\n got %+v, %v\nwant %+v", due, err, ops)
		}

		// The lists, newest first, hold each delivery as it ended.
		list, err := db.ListDeliveries(ctx, "shop", Page{})
		endedMicro := ended.Truncate(time.Microsecond)
		audit.EndedAt = &endedMicro
		if err != nil || len(list) != 2 || !reflect.DeepEqual(list[0], audit) || !reflect.DeepEqual(list[1], ops) {
			t.Fatalf("ListDeliveries(shop):\n got %+v, %v\nwant %+v", list, err, []Delivery{audit, ops})
		}
		if list, _ := db.ListDeliveries(ctx, "blog", Page{}); len(list) != 1 || list[0].State != DeliveryFailed || list[0].LastError != "smtp: 554 r\uFFFDponse\uFFFD" || !list[0].EndedAt.Equal(endedMicro) {
			t.Fatalf("ListDeliveries(blog) = %+v", list)
		}
		// A delivery that succeeds on a retry leaves the queue.
		ops.State, ops.Attempts, ops.LastError, ops.EndedAt = DeliveryDelivered, 2, "", &ended
		if err := db.UpdateDelivery(ctx, ops); err != nil {
			t.Fatal(err)
		}
		if next, ok, err := db.NextDeliveryAt(ctx); ok || err != nil {
			t.Fatalf("NextDeliveryAt with none pending = %v, %v, %v", next, ok, err)
		}
		if due, _ := db.DueDeliveries(ctx, retry.Add(time.Hour), 10); len(due) != 0 {
			t.Fatalf("due after they all ended: %+v", due)
		}
	})
}

func TestListDeliveriesPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop", "blog")
		if list, err := db.ListDeliveries(ctx, "shop", Page{}); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListDeliveries of none = %#v, %v", list, err)
		}
		var ds []Delivery
		for i := range 7 {
			app := "shop"
			if i%3 == 2 {
				app = "blog"
			}
			ds = append(ds, Delivery{App: app, Channel: "ops", Event: fmt.Sprintf("e%d", i), Payload: "{}"})
		}
		if err := db.EnqueueDeliveries(ctx, ds); err != nil {
			t.Fatal(err)
		}
		events := func(list []Delivery) string {
			out := []string{}
			for _, d := range list {
				out = append(out, d.Event)
			}
			return fmt.Sprint(out)
		}
		shop, _ := db.ListDeliveries(ctx, "shop", Page{})
		if events(shop) != "[e6 e4 e3 e1 e0]" {
			t.Fatalf("ListDeliveries(shop) = %s", events(shop))
		}
		cases := []struct {
			page Page
			want string
		}{
			{Page{Limit: 2}, "[e6 e4]"},
			{Page{Limit: 2, Before: shop[1].ID}, "[e3 e1]"},
			{Page{Limit: 2, Before: shop[3].ID}, "[e0]"},
			{Page{Before: shop[4].ID}, "[]"},
			{Page{Before: shop[0].ID + 100}, "[e6 e4 e3 e1 e0]"},
			{Page{Limit: -1, Before: -1}, "[e6 e4 e3 e1 e0]"},
		}
		for _, c := range cases {
			list, err := db.ListDeliveries(ctx, "shop", c.page)
			if err != nil || list == nil || events(list) != c.want {
				t.Errorf("ListDeliveries(shop, %+v) = %s, %v; want %s", c.page, events(list), err, c.want)
			}
		}
	})
}

// Notices enqueued at once are each queued once, under ids of their own.
func TestConcurrentEnqueueDeliveries(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop")
		errs := race(t, db, func(i int) error {
			return db.EnqueueDeliveries(ctx, []Delivery{
				{App: "shop", Channel: "a", Event: fmt.Sprint(i), Payload: "{}"},
				{App: "shop", Channel: "b", Event: fmt.Sprint(i), Payload: "{}"},
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("EnqueueDeliveries %d: %v", i, err)
			}
		}
		list, err := db.ListDeliveries(ctx, "shop", Page{Limit: 500})
		if err != nil || len(list) != 2*racers {
			t.Fatalf("%d deliveries queued (%v), want %d", len(list), err, 2*racers)
		}
		seen := map[string]bool{}
		for i, d := range list {
			if i > 0 && d.ID >= list[i-1].ID {
				t.Fatalf("ids not distinct and descending: %+v", list)
			}
			seen[d.Channel+d.Event] = true
		}
		if len(seen) != 2*racers {
			t.Fatalf("%d distinct notices, want %d", len(seen), 2*racers)
		}
		if due, _ := db.DueDeliveries(ctx, time.Now(), 500); len(due) != 2*racers {
			t.Fatalf("%d due, want %d", len(due), 2*racers)
		}
	})
}
