package build

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"sort"
)

// Totals summarise JUnit XML results.
type Totals struct {
	Total, Passed, Failed, Skipped int
	FailedTests                    []string
}

type junitCase struct {
	Name      string    `xml:"name,attr"`
	ClassName string    `xml:"classname,attr"`
	Failure   *struct{} `xml:"failure"`
	Error     *struct{} `xml:"error"`
	Skipped   *struct{} `xml:"skipped"`
}

type junitSuite struct {
	Cases  []junitCase  `xml:"testcase"`
	Suites []junitSuite `xml:"testsuite"`
}

// ParseJUnit reads JUnit XML files (a <testsuites> or a single <testsuite> root).
func ParseJUnit(paths []string) (Totals, error) {
	var t Totals
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return t, err
		}
		var root junitSuite
		err = xml.NewDecoder(f).Decode(&root)
		f.Close()
		if err != nil && err != io.EOF {
			return t, fmt.Errorf("%s is not JUnit XML: %w", p, err)
		}
		t.add(root)
	}
	sort.Strings(t.FailedTests)
	return t, nil
}

func (t *Totals) add(s junitSuite) {
	for _, c := range s.Cases {
		t.Total++
		switch {
		case c.Failure != nil || c.Error != nil:
			t.Failed++
			name := c.Name
			if c.ClassName != "" {
				name = c.ClassName + "." + c.Name
			}
			t.FailedTests = append(t.FailedTests, name)
		case c.Skipped != nil:
			t.Skipped++
		default:
			t.Passed++
		}
	}
	for _, sub := range s.Suites {
		t.add(sub)
	}
}
