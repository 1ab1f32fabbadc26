package web

import (
	"regexp"
	"testing"
)

// The API's messages that tell a terminal user what to type reach the
// console (a refused form, an error page, a reason) phrased for it: no
// command to type, no flag.
func TestConsoleTextNamesNoCLI(t *testing.T) {
	cli := regexp.MustCompile(`--[a-z]|slipway [a-z]`)
	for msg, want := range map[string]string{
		// deploy.Controller.Rollback, store.CreateDeployment, store.DeleteApp
		"deployment 5 is in progress; stop it instead (slipway deploy stop 5)":                                 "deployment 5 is in progress; stop it first with Stop on deployment #5's page",
		"deployment 5 of service web is still in progress; wait for it, or stop it with slipway deploy stop 5": "deployment 5 of service web is still in progress; wait for it, or stop it with Stop on deployment #5's page",
		"run 3 of app shop is running; cancel it first (slipway run cancel 3)":                                 "run 3 of app shop is running; cancel it first with Cancel run on run #3's page",
		// the API's approvals and artifacts
		"a rejection needs a comment saying why (--comment)": "a rejection needs a comment saying why: write it in the Comment box",
		"run 4's artifacts and logs expired on 2026-01-02T03:04:05Z: the server keeps them for a while after a run ends (slipway server --run-retention); start a new run to build them again": "run 4's artifacts and logs expired on 2026-01-02T03:04:05Z: the server keeps them for a while after a run ends (the server's run retention setting); start a new run to build them again",
		// deploy.APIKeys
		"autoscaling: the service has no load balancer, whose request counts target_requests_per_second tracks; track target_cpu_percent or target_memory_percent instead, or give it load_balancer settings first (slipway service update NAME --lb-container C --lb-container-port P --listener-port L)": "autoscaling: the service has no load balancer, whose request counts target_requests_per_second tracks; track target_cpu_percent or target_memory_percent instead, or give the service a load balancer first",
		// deploy's listener errors
		"load_balancer.listener_port: port 80 is a shared listener's (--http-listen/--https-listen): claim a host there instead, or choose another port":          "load_balancer.listener_port: port 80 is a shared listener's (the server's shared HTTP or HTTPS listener): claim a host there instead, or choose another port",
		"load_balancer.host: the server has no shared listener: start it with --http-listen ADDR and/or --https-listen ADDR, or give the service a listener_port": "load_balancer.host: the server has no shared listener: give the server a shared HTTP or HTTPS listener (its http-listen or https-listen setting), or give the service a listener_port",
		"load_balancer.https: the server has no HTTPS listener: start it with --https-listen ADDR":                                                                "load_balancer.https: the server has no HTTPS listener: give the server an HTTPS listener (its https-listen setting)",
		"load_balancer.https: the server has only an HTTPS listener: set https (and get a certificate) or start the server with --http-listen ADDR":               "load_balancer.https: the server has only an HTTPS listener: set https (and get a certificate) or give the server an HTTP listener (its http-listen setting)",
		"a token limited to an environment names its app too (--app)":                                                                                             "a token limited to an environment names its app too",
		// Whatever else comes: the command goes, a flag becomes a setting.
		"refused (see slipway foo bar --baz)":                            "refused",
		"the secret value is empty; pipe it on stdin or use --from-file": "the secret value is empty; pipe it on stdin or use the from-file setting",
		"pass --data DIR": "pass the data setting",
		// Nothing to change.
		"Run #3 is being cancelled.":             "Run #3 is being cancelled.",
		"Slipway cannot reach its database now.": "Slipway cannot reach its database now.",
		"exit status 2 -- see the log":           "exit status 2 -- see the log",
	} {
		got := ConsoleText(msg)
		if got != want {
			t.Errorf("ConsoleText(%q)\n got %q\nwant %q", msg, got, want)
		}
		if cli.MatchString(got) {
			t.Errorf("ConsoleText(%q) still names the CLI: %q", msg, got)
		}
	}
}
