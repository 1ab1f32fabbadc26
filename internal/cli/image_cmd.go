package cli

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/web"
	"github.com/spf13/cobra"
)

func imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Images in the built-in registry"}

	list := &cobra.Command{
		Use:   "list [REPOSITORY]",
		Short: "List images: tags, digests, sizes, when and by whom pushed",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if len(args) == 1 {
				q.Set("repository", args[0])
			}
			var imgs []store.Image
			if err := c.Do(cmd.Context(), "GET", "/api/v1/images?"+q.Encode(), nil, &imgs); err != nil {
				return err
			}
			return p.emit(imgs, func(w *tabwriter.Writer) {
				row(w, "REPOSITORY", "TAGS", "DIGEST", "SIZE", "PUSHED", "BY", "KIND")
				for _, i := range imgs {
					kind := "image"
					if i.Subject != "" {
						kind = "referrer of " + shortSHA(strings.TrimPrefix(i.Subject, "sha256:"))
					} else if i.ArtifactType != "" {
						kind = i.ArtifactType
					}
					row(w, i.Repo, orDash(strings.Join(i.Tags, ",")), i.Digest, web.Size(i.Size), humanTime(i.PushedAt), i.PushedBy, kind)
				}
			})
		},
	}

	rm := &cobra.Command{
		Use:   "rm REPOSITORY:TAG|REPOSITORY@DIGEST",
		Short: "Remove a tag, or an image with all its tags (blobs go at the next gc)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "DELETE", "/api/v1/images?reference="+url.QueryEscape(args[0]), nil)
		},
	}

	var dryRun bool
	var grace string
	gc := &cobra.Command{
		Use:   "gc [--dry-run] [--grace 1h]",
		Short: "Apply lifecycle policies and delete blobs no manifest references",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var rep struct {
				DryRun            bool     `json:"dry_run"`
				ExpiredManifests  []string `json:"expired_manifests"`
				MarkedBlobs       int      `json:"marked_blobs"`
				DeletedBlobs      []string `json:"deleted_blobs"`
				DeletedBytes      int64    `json:"deleted_bytes"`
				SkippedYoungBlobs int      `json:"skipped_young_blobs"`
			}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/images/gc", map[string]any{"dry_run": dryRun, "grace": grace}, &rep); err != nil {
				return err
			}
			if p.json {
				return p.emit(rep, nil)
			}
			verb := "Deleted"
			if rep.DryRun {
				verb = "Would delete"
			}
			out := cmd.OutOrStdout()
			for _, m := range rep.ExpiredManifests {
				fmt.Fprintf(out, "%s manifest %s (lifecycle policy)\n", verb, m)
			}
			fmt.Fprintf(out, "%s %d blobs (%s); %d blobs in use; %d unreferenced blobs younger than the grace period kept\n",
				verb, len(rep.DeletedBlobs), web.Size(rep.DeletedBytes), rep.MarkedBlobs, rep.SkippedYoungBlobs)
			return nil
		},
	}
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be deleted")
	gc.Flags().StringVar(&grace, "grace", "1h", "keep unreferenced blobs younger than this (pushes in progress)")

	var immutable string
	var keepLast, expireDays int
	policy := &cobra.Command{
		Use:   "policy REPOSITORY [--immutable-tags=true|false] [--keep-last N] [--expire-untagged-days D]",
		Short: "Show or set a repository's tag immutability and lifecycle policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var pol store.RepoPolicy
			if err := c.Do(cmd.Context(), "GET", "/api/v1/images/policy?repository="+url.QueryEscape(args[0]), nil, &pol); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("immutable-tags") || f.Changed("keep-last") || f.Changed("expire-untagged-days") {
				if f.Changed("immutable-tags") {
					switch immutable {
					case "true":
						pol.ImmutableTags = true
					case "false":
						pol.ImmutableTags = false
					default:
						return fmt.Errorf("--immutable-tags must be true or false")
					}
				}
				if f.Changed("keep-last") {
					pol.KeepLast = keepLast
				}
				if f.Changed("expire-untagged-days") {
					pol.ExpireUntaggedDays = expireDays
				}
				if err := c.Do(cmd.Context(), "PUT", "/api/v1/images/policy", pol, &pol); err != nil {
					return err
				}
			}
			return p.emit(pol, func(w *tabwriter.Writer) {
				row(w, "Repository:", pol.Repo)
				row(w, "Immutable tags:", pol.ImmutableTags)
				row(w, "Keep last tagged:", orAll(pol.KeepLast))
				row(w, "Expire untagged after:", orNever(pol.ExpireUntaggedDays))
			})
		},
	}
	policy.Flags().StringVar(&immutable, "immutable-tags", "", "refuse pushes that move an existing tag (true|false)")
	policy.Flags().IntVar(&keepLast, "keep-last", 0, "keep the newest N tagged images (0 = all)")
	policy.Flags().IntVar(&expireDays, "expire-untagged-days", 0, "delete untagged images after D days (0 = never)")

	cmd.AddCommand(list, rm, gc, policy)
	return cmd
}

func orAll(n int) string {
	if n == 0 {
		return "all"
	}
	return fmt.Sprint(n)
}

func orNever(days int) string {
	if days == 0 {
		return "never"
	}
	return fmt.Sprintf("%d days", days)
}
