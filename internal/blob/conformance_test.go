package blob

import (
	"context"
	"flag"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/testsuites"

	"github.com/slipway-dev/slipway/internal/blob/s3test"
)

// skippedCases are the cases of distribution's driver suite not run here,
// with why. Each is about size, not behaviour: TestIntegrationDrivers covers
// the same behaviour with smaller objects.
var skippedCases = map[string]string{
	// Writes and reads back a 5 GiB stream: minutes of disk and CPU on two
	// cores, for each driver. LargeObject (40 MiB: multipart upload and
	// multipart copy) covers the same code paths.
	"TestWriteReadLargeStreams": "writes 5 GiB; LargeObject covers multipart upload and copy with 40 MiB",
	// 32 concurrent writers of 32 MiB each (1 GiB through a temp file and
	// the driver, then read back): 11 s (filesystem) and 13 s (s3) on two
	// cores, with both drivers' suites running at once; that would nearly
	// double this package's time. ConcurrentWriters covers concurrent
	// writers.
	"TestConcurrentFileStreams": "writes 32 × 32 MiB; ConcurrentWriters covers concurrent writers",
}

// TestIntegrationConformance runs distribution's own storage driver suite
// against both drivers Open returns: the filesystem driver and the s3-aws
// driver against versitygw. The two run in parallel (each spends 15 s
// sleeping in TestStatCall to see modification times move).
func TestIntegrationConformance(t *testing.T) {
	selectCases(t)
	ctx := context.Background()
	// Registered first, so it still runs if versitygw cannot be built and
	// s3test skips the rest of this test.
	t.Run("filesystem", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
			return Open(ctx, Config{}, dir)
		}, false)
	})
	s := s3test.Start(t)
	s.Setenv(t) // here, not in the parallel subtest, which may not Setenv
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse(s.URL("conformance"))
		if err != nil {
			t.Fatal(err)
		}
		testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
			return Open(ctx, cfg, "")
		}, false)
	})
}

// selectCases keeps skippedCases out of the suite. testify runs every Test*
// method of the suite and has no way to leave one out but its -testify.m
// filter, so that is set (for this test only) to the names of all the
// others, taken from the suite type so that new upstream cases still run.
// Each skipped case is reported as a skipped subtest with its reason.
func selectCases(t *testing.T) {
	f := flag.Lookup("testify.m")
	if f == nil {
		t.Fatal("testify's -testify.m flag is not registered")
	}
	if f.Value.String() != "" {
		return // the developer chose the cases
	}
	var run []string
	typ := reflect.TypeFor[*testsuites.DriverSuite]()
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if _, skip := skippedCases[name]; strings.HasPrefix(name, "Test") && !skip {
			run = append(run, regexp.QuoteMeta(name))
		}
	}
	slices.Sort(run)
	old := f.Value.String()
	if err := flag.Set("testify.m", "^("+strings.Join(run, "|")+")$"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("testify.m", old) })
	for name, why := range skippedCases {
		t.Run("skipped/"+name, func(t *testing.T) { t.Skip(why) })
	}
}
