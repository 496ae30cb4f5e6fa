package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newClusterCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and operate a thaw cluster (through any of its workers)",
		Long: `Commands about the cluster the worker at --server belongs to
(docs/cluster.md). A worker started by a plain "thaw serve" is a cluster of
one.`,
	}
	cmd.AddCommand(newClusterLsCommand(g), newClusterDrainCommand(g))
	return cmd
}

func newClusterLsCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the cluster's workers, their load and their functions",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client().Cluster(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(cl)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKER\tADDRESS\tSTATE\tSLOTS\tMEMORY USED\tIDLE\tBUSY\tQUEUED\tFUNCTIONS\tON DISK\tCACHED")
			for _, w := range cl.Workers {
				id := w.ID
				if id == cl.Self {
					id += " *"
				}
				// Functions whose snapshot is in the worker's snapshot
				// directory, and those whose restore's chunks are all in
				// its store disk cache (what placement's peer-cached
				// rule looks for).
				local, cached := 0, 0
				for _, f := range w.Functions {
					if f.SnapshotLocal {
						local++
					}
					if f.SnapshotCached {
						cached++
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s / %s\t%d\t%d\t%d\t%d\t%d\t%d\n", id, w.Address, w.State, w.Slots,
					mib(int64(w.MemoryUsed)), mib(int64(w.MemoryBytes)), w.Idle, w.Busy, w.Queued, len(w.Functions), local, cached)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the cluster as JSON (an object whose workers array lists id, address, state, functions, ...)")
	return cmd
}

func newClusterDrainCommand(g *globalOptions) *cobra.Command {
	var undo bool
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Drain a worker: it takes no new placements and releases its warm instances as their requests finish",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Drain(cmd.Context(), args[0], !undo); err != nil {
				return err
			}
			verb := "draining"
			if undo {
				verb = "no longer draining"
			}
			fmt.Fprintf(g.stdout, "%s: %s\n", args[0], verb)
			return nil
		},
	}
	cmd.Flags().BoolVar(&undo, "undo", false, "take placements again")
	return cmd
}
