package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// approvalCmds builds `slipway approve` and `slipway reject`.
func approvalCmds() []*cobra.Command {
	build := func(verb string, approve bool) *cobra.Command {
		var comment string
		cmd := &cobra.Command{
			Use:   verb + " RUN",
			Short: map[bool]string{true: "Approve the run's waiting approval action; the run goes on", false: "Reject the run's waiting approval action; its stage fails"}[approve],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, p, err := setup(cmd)
				if err != nil {
					return err
				}
				if !approve && comment == "" {
					return fmt.Errorf("reject needs --comment saying why")
				}
				var res map[string]any
				if err := c.Do(cmd.Context(), "POST", "/api/v1/runs/"+pathEscape(args[0])+"/"+verb, map[string]string{"comment": comment}, &res); err != nil {
					return err
				}
				if p.json {
					return p.emit(res, nil)
				}
				msg, _ := res["message"].(string)
				fmt.Fprintln(cmd.OutOrStdout(), capitalize(msg))
				return nil
			},
		}
		usage := "why (recorded in the run's audit log)"
		if !approve {
			usage += "; required"
		}
		cmd.Flags().StringVar(&comment, "comment", "", usage)
		return cmd
	}
	return []*cobra.Command{build("approve", true), build("reject", false)}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
