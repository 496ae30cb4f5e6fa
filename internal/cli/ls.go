package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newLsCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List deployed functions",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fns, err := g.client().List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(fns)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMODE\tMEMORY\tIDLE\tBUSY\tSNAPSHOT\tWORKING SET\tPUBLIC\tDEPLOYED")
			for _, f := range fns {
				snap, ws := "-", "-"
				if f.Snapshot != nil {
					snap = mib(f.Snapshot.DataBytes)
					if f.Snapshot.WSBytes > 0 {
						ws = mib(f.Snapshot.WSBytes)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d MiB\t%d\t%d\t%s\t%s\t%v\t%s\n", f.Name, f.Config.RestoreMode, f.Config.MemoryMiB,
					f.Idle, f.Busy, snap, ws, f.Config.Public, f.Deployed.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the functions as JSON")
	return cmd
}
