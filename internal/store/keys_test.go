package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

func TestLoadSecret(t *testing.T) {
	gen, err := store.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o700)
	outside := filepath.Join(dir, "store.key")
	inside := filepath.Join(dataDir, "store.key")
	short := filepath.Join(dir, "short.key")
	for path, content := range map[string]string{outside: gen + "\n", inside: gen, short: "abcd"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Keys others may read (or write) are refused, whatever the umask.
	modes := map[string]os.FileMode{"world.key": 0o644, "group.key": 0o640, "groupw.key": 0o620, "other.key": 0o604}
	for name, mode := range modes {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(gen), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		env     string
		keyFile string
		want    error
	}{
		{"key file", "", outside, nil},
		{"env hex", gen, "", nil},
		{"env base64", "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=", "", nil},
		{"nothing", "", "", errdefs.ErrInvalid},
		{"key file inside data dir", "", inside, errdefs.ErrInvalid},
		{"short secret", "", short, errdefs.ErrInvalid},
		{"key file mode 0644", "", filepath.Join(dir, "world.key"), errdefs.ErrInvalid},
		{"key file mode 0640", "", filepath.Join(dir, "group.key"), errdefs.ErrInvalid},
		{"key file mode 0620", "", filepath.Join(dir, "groupw.key"), errdefs.ErrInvalid},
		{"key file mode 0604", "", filepath.Join(dir, "other.key"), errdefs.ErrInvalid},
		{"key file is a directory", "", dataDir, errdefs.ErrInvalid},
		{"env not a key", "not a key", "", errdefs.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(store.EnvKey, tc.env)
			got, err := store.LoadSecret(tc.keyFile, dataDir)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && len(got) < store.MinSecretLen {
				t.Fatalf("secret of %d bytes", len(got))
			}
		})
	}
}

func TestNewKeys(t *testing.T) {
	tests := []struct {
		tenant string
		secret []byte
		ok     bool
	}{
		{"acme", secret, true},
		{"", secret, false},
		{"a/b", secret, false},
		{strings.Repeat("x", 65), secret, false},
		{"acme", secret[:31], false},
	}
	for _, tc := range tests {
		t.Run(tc.tenant, func(t *testing.T) {
			_, err := store.NewKeys(tc.tenant, tc.secret)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
	a, b := keys(t, "acme", secret), keys(t, "acme2", secret)
	if a.ID() == b.ID() {
		t.Error("two tenants share a key id")
	}
}
