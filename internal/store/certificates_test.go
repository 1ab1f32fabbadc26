package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestCertificates(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db, err := s.reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		exp := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)
		c := Certificate{Name: "a.test", Hosts: []string{"a.test", "*.a.test"}, CertPEM: "PEM", NotBefore: time.Now().Truncate(time.Millisecond), NotAfter: exp,
			Issuer: "CN=ca", Fingerprint: "ab", Source: CertUploaded, UpdatedBy: "admin"}
		if err := db.PutCertificate(ctx, c, []byte("sealed-1")); err != nil {
			t.Fatal(err)
		}
		if err := db.SetCertificateError(ctx, "a.test", "renewal failed"); err != nil {
			t.Fatal(err)
		}
		got, sealed, err := db.SealedCertificate(ctx, "a.test")
		if err != nil || string(sealed) != "sealed-1" || got.LastError != "renewal failed" || !got.NotAfter.Equal(exp) || len(got.Hosts) != 2 {
			t.Fatalf("SealedCertificate = %+v %q %v", got, sealed, err)
		}
		// A new certificate of the same name replaces it and clears the error.
		c.Source, c.Fingerprint = CertACME, "cd"
		if err := db.PutCertificate(ctx, c, []byte("sealed-2")); err != nil {
			t.Fatal(err)
		}
		list, err := db.ListCertificates(ctx)
		if err != nil || len(list) != 1 || list[0].Source != CertACME || list[0].LastError != "" || list[0].Fingerprint != "cd" {
			t.Fatalf("ListCertificates = %+v %v", list, err)
		}
		if err := db.DeleteCertificate(ctx, "a.test"); err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{db.DeleteCertificate(ctx, "a.test"), func() error { _, _, err := db.SealedCertificate(ctx, "a.test"); return err }()} {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("after delete: %v, want ErrNotFound", err)
			}
		}
		if _, err := db.ACMEAccountKey(ctx, "https://acme.test/dir"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ACMEAccountKey before any: %v", err)
		}
		first, err := db.PutACMEAccountKey(ctx, "https://acme.test/dir", []byte("k1"))
		if err != nil || !bytes.Equal(first, []byte("k1")) {
			t.Fatalf("PutACMEAccountKey = %q %v", first, err)
		}
		// A second server racing to create the account gets the first key.
		if k, err := db.PutACMEAccountKey(ctx, "https://acme.test/dir", []byte("k2")); err != nil || !bytes.Equal(k, []byte("k1")) {
			t.Fatalf("second PutACMEAccountKey = %q %v", k, err)
		}
	})
}
