package cli

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func envCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "Manage environments: where their tasks run"}

	var kubeconfig, kctx, namespace string
	set := &cobra.Command{
		Use:   "set-runtime APP ENV docker|kubernetes [--kubeconfig FILE --context C --namespace N]",
		Short: "Run an environment's tasks on the local Docker engine (the default) or in a Kubernetes namespace",
		Long: "Run an environment's tasks on the local Docker engine (the default) or in a Kubernetes namespace.\n\n" +
			"For kubernetes, the kubeconfig must carry its credentials inline (a service account token or\n" +
			"client-certificate-data; `kubectl config view --raw --flatten --minify` writes one). The server\n" +
			"checks that the cluster answers and that the credentials may manage pods, secrets and events in\n" +
			"the namespace before it keeps them, sealed. The environment must have no services yet.",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]string{"kind": args[2]}
			switch args[2] {
			case store.RuntimeDocker:
				if kubeconfig != "" || kctx != "" || namespace != "" {
					return fmt.Errorf("--kubeconfig, --context and --namespace are for the kubernetes runtime")
				}
			case store.RuntimeKubernetes:
				if kubeconfig == "" {
					return fmt.Errorf("--kubeconfig is required for the kubernetes runtime (the file kubectl uses)")
				}
				b, err := os.ReadFile(kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				body["kubeconfig"], body["context"], body["namespace"] = string(b), kctx, namespace
			default:
				return fmt.Errorf("runtime %q is not docker or kubernetes", args[2])
			}
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			if args[2] == store.RuntimeKubernetes {
				if err := credentialSafeTo(c.URL(), "a kubeconfig"); err != nil {
					return err
				}
			}
			var out store.EnvRuntime
			path := "/api/v1/apps/" + url.PathEscape(args[0]) + "/envs/" + url.PathEscape(args[1]) + "/runtime"
			if err := c.Do(cmd.Context(), "PUT", path, body, &out); err != nil {
				return err
			}
			if p.json {
				return p.emit(out, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Environment %s of %s runs its tasks on %s\n", out.Env, out.App, runtimeText(out))
			return nil
		},
	}
	set.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file with inline credentials")
	set.Flags().StringVar(&kctx, "context", "", "kubeconfig context (default: its current context)")
	set.Flags().StringVar(&namespace, "namespace", "", "namespace of the environment's pods (default: the context's, else default)")

	show := &cobra.Command{
		Use:   "runtime APP ENV",
		Short: "Show where an environment's tasks run",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, "/api/v1/apps/"+url.PathEscape(args[0])+"/envs/"+url.PathEscape(args[1])+"/runtime", func(w *tabwriter.Writer, r store.EnvRuntime) {
				row(w, "APP", "ENVIRONMENT", "RUNTIME", "CONTEXT", "NAMESPACE", "UPDATED BY")
				row(w, r.App, r.Env, r.Kind, orDash(r.Context), orDash(r.Namespace), orDash(r.UpdatedBy))
			})
		},
	}
	cmd.AddCommand(set, show)
	return cmd
}

func runtimeText(r store.EnvRuntime) string {
	if r.Kind != store.RuntimeKubernetes {
		return "the local Docker engine"
	}
	parts := []string{"Kubernetes namespace " + r.Namespace}
	if r.Context != "" {
		parts = append(parts, "context "+r.Context)
	}
	return strings.Join(parts, ", ")
}
