package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
)

// Environment variables holding S3 credentials for the store commands
// (never flags, so they stay out of shell history and process listings).
const (
	envS3AccessKey = "THAW_S3_ACCESS_KEY"
	envS3SecretKey = "THAW_S3_SECRET_KEY"
)

// storeFlags locate a snapshot store and its key.
type storeFlags struct {
	Dir        string
	CacheDir   string
	S3Endpoint string
	S3Bucket   string
	S3Prefix   string
	S3Region   string
	S3Secure   bool
	KeyFile    string
	Tenant     string
}

func (sf *storeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&sf.Dir, "store-dir", "", "store on a local directory (instead of S3)")
	f.StringVar(&sf.CacheDir, "cache-dir", "", "local disk cache in front of the store (optional)")
	f.StringVar(&sf.S3Endpoint, "s3-endpoint", "", "S3 endpoint host:port (credentials from $"+envS3AccessKey+" and $"+envS3SecretKey+")")
	f.StringVar(&sf.S3Bucket, "s3-bucket", "thaw", "S3 bucket")
	f.StringVar(&sf.S3Prefix, "s3-prefix", "", "object name prefix inside the bucket")
	f.StringVar(&sf.S3Region, "s3-region", "us-east-1", "S3 region")
	f.BoolVar(&sf.S3Secure, "s3-secure", false, "use https")
	f.StringVar(&sf.KeyFile, "key-file", "", "file holding the store's master secret (default: $"+store.EnvKey+")")
	f.StringVar(&sf.Tenant, "tenant", "default", "tenant whose snapshots to act on")
}

// config builds the store configuration the flags describe.
func (sf *storeFlags) config() (stack.Config, error) {
	c := stack.Config{Tenant: sf.Tenant, Dir: sf.Dir, CacheDir: sf.CacheDir}
	if sf.S3Endpoint != "" {
		if sf.Dir != "" {
			return c, fmt.Errorf("--store-dir and --s3-endpoint are exclusive: %w", errdefs.ErrInvalid)
		}
		c.S3 = &s3.Config{Endpoint: sf.S3Endpoint, Secure: sf.S3Secure, Bucket: sf.S3Bucket, Prefix: sf.S3Prefix,
			Region: sf.S3Region, AccessKey: os.Getenv(envS3AccessKey), SecretKey: os.Getenv(envS3SecretKey)}
	} else if sf.Dir == "" {
		return c, fmt.Errorf("no store: pass --store-dir or --s3-endpoint: %w", errdefs.ErrInvalid)
	}
	secret, err := store.LoadSecret(sf.KeyFile, sf.Dir)
	if err != nil {
		return c, err
	}
	c.Secret = secret
	return c, c.Validate()
}

func newStoreCommand(g *globalOptions) *cobra.Command {
	sf := &storeFlags{}
	var asJSON bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect and maintain the snapshot store: stats, verify, gc, ls",
		Long: `Act on one tenant's part of the snapshot store (content-addressed, encrypted
chunks; docs/store.md). The store is a local directory (--store-dir) or an S3
bucket (--s3-endpoint, --s3-bucket; credentials from $` + envS3AccessKey + ` and
$` + envS3SecretKey + `). The master secret comes from --key-file or $` + store.EnvKey + `.`,
	}
	sf.register(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	open := func(cmd *cobra.Command) (*stack.Handle, error) {
		c, err := sf.config()
		if err != nil {
			return nil, err
		}
		c.GCGrace = grace
		return stack.Open(cmd.Context(), c)
	}
	printJSON := func(v any) error {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Snapshots, stored chunks and bytes, logical bytes and the dedup ratio",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := open(cmd)
			if err != nil {
				return err
			}
			defer h.Close()
			st, err := h.Store.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(st)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "tenant\t%s\n", sf.Tenant)
			fmt.Fprintf(tw, "snapshots\t%d\n", st.Snapshots)
			fmt.Fprintf(tw, "stored chunks\t%d\n", st.Chunks)
			fmt.Fprintf(tw, "stored bytes\t%d (%s)\n", st.StoredBytes, mib(st.StoredBytes))
			fmt.Fprintf(tw, "logical bytes\t%d (%s)\n", st.LogicalBytes, mib(st.LogicalBytes))
			fmt.Fprintf(tw, "zero bytes (not stored)\t%d (%s)\n", st.ZeroBytes, mib(st.ZeroBytes))
			fmt.Fprintf(tw, "referenced bytes\t%d (%s)\n", st.ReferencedBytes, mib(st.ReferencedBytes))
			fmt.Fprintf(tw, "dedup ratio\t%.2f\n", st.DedupRatio)
			return tw.Flush()
		},
	}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Re-read and authenticate every chunk every snapshot references, from the origin store",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := open(cmd)
			if err != nil {
				return err
			}
			defer h.Close()
			res, err := h.Store.Verify(cmd.Context())
			if err != nil && !errors.Is(err, errdefs.ErrCorrupt) {
				return err
			}
			if asJSON {
				if jerr := printJSON(res); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(g.stdout, "verified %d snapshots, %d chunks, %d bytes\n", res.Snapshots, res.Chunks, res.Bytes)
				for _, p := range res.Problems {
					fmt.Fprintf(g.stdout, "PROBLEM: %s\n", p)
				}
			}
			return err
		},
	}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Delete chunks no snapshot references (older than the upload lease)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := open(cmd)
			if err != nil {
				return err
			}
			defer h.Close()
			res, err := h.Store.GC(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Fprintf(g.stdout, "manifests %d, chunks %d (%d referenced), deleted %d (%d bytes), kept young %d\n",
				res.Manifests, res.Chunks, res.Referenced, res.Deleted, res.DeletedBytes, res.Young)
			return nil
		},
	}
	gc.Flags().DurationVar(&grace, "grace", 0, "upload lease: never delete chunks younger than this (default 1h)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the tenant's snapshots",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := open(cmd)
			if err != nil {
				return err
			}
			defer h.Close()
			ids, err := h.Store.Snapshots(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(ids)
			}
			for _, id := range ids {
				fmt.Fprintln(g.stdout, id)
			}
			return nil
		},
	}
	cmd.AddCommand(stats, verify, gc, ls)
	return cmd
}
