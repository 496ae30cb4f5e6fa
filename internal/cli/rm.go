package cli

import "github.com/spf13/cobra"

func newRmCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a function, its instances and snapshots",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().Delete(cmd.Context(), args[0])
		},
	}
}
