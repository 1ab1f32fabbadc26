package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func artifactCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "artifact", Short: "Run artifacts"}
	var file string
	get := &cobra.Command{
		Use:   "get RUN NAME -o FILE",
		Short: "Download an artifact (a tar archive) of a run",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" || file == "table" || file == "json" {
				return fmt.Errorf("-o FILE is required: the path to write the artifact's tar archive to")
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			resp, err := c.Stream(cmd.Context(), "/api/v1/runs/"+pathEscape(args[0])+"/artifacts/"+pathEscape(args[1]), "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			tmp := file + ".part"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(tmp)
				return fmt.Errorf("download artifact: %w", err)
			}
			if err := os.Rename(tmp, file); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s (%d bytes, %s)\n", file, n, resp.Header.Get("Digest"))
			return nil
		},
	}
	get.Flags().StringVarP(&file, "output", "o", "", "file to write")
	cmd.AddCommand(get)
	return cmd
}
