package secret

import (
	"bytes"
	"testing"
)

func TestDerive(t *testing.T) {
	k1, _ := New(bytes.Repeat([]byte{1}, 32))
	k1again, _ := New(bytes.Repeat([]byte{1}, 32))
	k2, _ := New(bytes.Repeat([]byte{2}, 32))
	a := k1.Derive("server forward proof")
	if len(a) != 32 || !bytes.Equal(a, k1again.Derive("server forward proof")) {
		t.Fatal("the same master key and label give another key")
	}
	if bytes.Equal(a, k1.Derive("another use")) || bytes.Equal(a, k2.Derive("server forward proof")) {
		t.Fatal("another label or master key gives the same key")
	}
	if bytes.Contains(a, bytes.Repeat([]byte{1}, 8)) {
		t.Fatal("the derived key shows the master key")
	}
}
