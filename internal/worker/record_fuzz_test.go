package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeRecord: function.json, read from the data directory, decodes
// to an error or to a record that is safe to use (its name and snapshot
// id are path elements, its module hash a file name, its configuration
// valid), never a panic; and what it accepts survives a round trip.
func FuzzDecodeRecord(f *testing.F) {
	valid := record{Name: "hello", Config: Config{MemoryMiB: 64, Policy: "fixed:2"}, ModuleSHA: strings.Repeat("ab", 32),
		ModuleSize: 100, Deployed: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Snapshot: "20260102T030405-0123456789ab"}
	b, _ := json.Marshal(valid)
	f.Add(b)
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"name":"../x"}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("AB", 32) + `"}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("ab", 32) + `","snapshot":"../../etc"}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("ab", 32) + `","config":{"timeout":1e300}}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("ab", 32) + `","config":{"rerecord_miss_rate":-1}}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("ab", 32) + `","config":{"policy":"pronghorn:window=99999999999"}}`,
		`{"name":"a","module_sha256":"` + strings.Repeat("ab", 32) + `","module_size":-5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		if ValidName(rec.Name) != nil || !validSHA(rec.ModuleSHA) || rec.ModuleSize < 0 {
			t.Fatalf("accepted %+v", rec)
		}
		if rec.Snapshot != "" && (strings.ContainsAny(rec.Snapshot, `/\`) || strings.HasPrefix(rec.Snapshot, ".")) {
			t.Fatalf("accepted snapshot id %q", rec.Snapshot)
		}
		if err := rec.Config.WithDefaults().Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		back, err := decodeRecord(out)
		if err != nil || back.Name != rec.Name || back.ModuleSHA != rec.ModuleSHA || back.Snapshot != rec.Snapshot || back.Config != rec.Config {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", rec, out, back, err)
		}
	})
}
