package web

import (
	"regexp"
	"strings"
)

// The API's messages are read at a terminal, and some say what to type
// there: "stop it with slipway deploy stop 5", "(--comment)". The console
// shows them (a refused form, an error page) phrased for itself instead:
// the button and the page that do it, the server setting by its name.
// The API's own messages stay as they are.

// consoleRewrites turn what a message tells a terminal user into what it
// tells a console user.
var consoleRewrites = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`stop it instead \(slipway deploy stop (\d+)\)`), "stop it first with Stop on deployment #$1's page"},
	{regexp.MustCompile(`stop it with slipway deploy stop (\d+)`), "stop it with Stop on deployment #$1's page"},
	{regexp.MustCompile(`cancel it first \(slipway run cancel (\d+)\)`), "cancel it first with Cancel run on run #$1's page"},
	{regexp.MustCompile(` \(--comment\)`), ": write it in the Comment box"},
	{regexp.MustCompile(` \(slipway server --run-retention\)`), " (the server's run retention setting)"},
	{regexp.MustCompile(`give it load_balancer settings first \(slipway service update [^)]*\)`), "give the service a load balancer first"},
	{regexp.MustCompile(`\(--http-listen/--https-listen\)`), "(the server's shared HTTP or HTTPS listener)"},
	{regexp.MustCompile(`start it with --http-listen ADDR and/or --https-listen ADDR`), "give the server a shared HTTP or HTTPS listener (its http-listen or https-listen setting)"},
	{regexp.MustCompile(`start it with --https-listen ADDR`), "give the server an HTTPS listener (its https-listen setting)"},
	{regexp.MustCompile(`start the server with --http-listen ADDR`), "give the server an HTTP listener (its http-listen setting)"},
	{regexp.MustCompile(` \(--app\)`), ""},
	// Anything else: a parenthesis that only shows the command to type
	// goes, and a flag left in the text is named as a setting.
	{regexp.MustCompile(` \([^()]*(?:slipway [a-z]|--[a-z])[^()]*\)`), ""},
	{regexp.MustCompile(`(^|\s)--([a-z][a-z0-9-]*)(?:[ =][A-Z][A-Z_]*\b)?`), "${1}the $2 setting"},
}

// ConsoleText phrases a message for the console. Templates have it as
// console, for reasons stored by the pipeline and the deployment
// controller, which may quote such a message.
func ConsoleText(msg string) string {
	if !strings.Contains(msg, "--") && !strings.Contains(msg, "slipway ") {
		return msg
	}
	for _, rw := range consoleRewrites {
		msg = rw.re.ReplaceAllString(msg, rw.with)
	}
	return msg
}
