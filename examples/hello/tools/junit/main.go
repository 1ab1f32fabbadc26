// Command junit turns `go test -json` output (stdin) into a JUnit XML
// report (stdout), the format CodeBuild and Slipway read test results in.
package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type testCase struct {
	Name      string    `xml:"name,attr"`
	ClassName string    `xml:"classname,attr"`
	Time      string    `xml:"time,attr"`
	Failure   *failure  `xml:"failure,omitempty"`
	Skipped   *struct{} `xml:"skipped,omitempty"`
}

type failure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type suite struct {
	Name     string     `xml:"name,attr"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Cases    []testCase `xml:"testcase"`
}

func main() {
	suites := map[string]*suite{}
	output := map[string]*strings.Builder{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		key := ev.Package + "." + ev.Test
		switch ev.Action {
		case "output":
			if output[key] == nil {
				output[key] = &strings.Builder{}
			}
			output[key].WriteString(ev.Output)
		case "pass", "fail", "skip":
			s := suites[ev.Package]
			if s == nil {
				s = &suite{Name: ev.Package}
				suites[ev.Package] = s
			}
			tc := testCase{Name: ev.Test, ClassName: ev.Package, Time: fmt.Sprintf("%.3f", ev.Elapsed)}
			s.Tests++
			switch ev.Action {
			case "fail":
				s.Failures++
				text := ""
				if output[key] != nil {
					text = output[key].String()
				}
				tc.Failure = &failure{Message: "test failed", Text: text}
			case "skip":
				s.Skipped++
				tc.Skipped = &struct{}{}
			}
			s.Cases = append(s.Cases, tc)
		}
	}
	names := make([]string, 0, len(suites))
	for n := range suites {
		names = append(names, n)
	}
	sort.Strings(names)
	out := struct {
		XMLName xml.Name `xml:"testsuites"`
		Suites  []*suite `xml:"testsuite"`
	}{}
	for _, n := range names {
		out.Suites = append(out.Suites, suites[n])
	}
	fmt.Print(xml.Header)
	enc := xml.NewEncoder(os.Stdout)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println()
}
