package testtool

// Runner runs a test binary's tests: *testing.M, or another package's
// RunMain around it, so that a TestMain can stack the servers it needs:
//
//	pgtest.RunMain(testtool.RunFunc(func() int { return kubetest.RunMain(m) }))
type Runner interface{ Run() int }

// RunFunc makes a function a Runner.
type RunFunc func() int

// Run calls f.
func (f RunFunc) Run() int { return f() }
