package workflow

import "testing"

// TestAcceptsWhatGitHubStillRuns: files that run on GitHub today (with a
// deprecation warning there) must run here unchanged: ::set-output in a
// run step and the old major versions of the AWS actions.
func TestAcceptsWhatGitHubStillRuns(t *testing.T) {
	src := `on:
  push:
    tags: ['v*']
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: aws-actions/configure-aws-credentials@v1
        with:
          aws-region: us-east-1
      - id: v
        run: echo ::set-output name=VERSION::${GITHUB_REF/refs\/tags\//}
      - run: echo "::set-env name=A::b"
      - run: echo "${{ steps.v.outputs.VERSION }}"
`
	if _, err := Parse(".github/workflows/aws.yml", []byte(src)); err != nil {
		t.Fatalf("refused: %v", err)
	}
}
