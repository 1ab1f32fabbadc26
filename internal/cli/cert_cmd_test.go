package cli

import (
	"strings"
	"testing"
)

func TestKeySafeTo(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://slipway.example.com": true,
		"http://127.0.0.1:7070":       true,
		"http://[::1]:7070":           true,
		"http://localhost:7070":       true,
		"http://10.0.0.5:7070":        false,
		"http://slipway.example.com":  false,
	} {
		err := keySafeTo(url)
		if ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "refusing to send a private key over plain HTTP") {
			t.Errorf("keySafeTo(%s) = %v", url, err)
		}
	}
}
