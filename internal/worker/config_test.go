package worker

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
)

// nonNumeric are the fields whose values are not numbers.
var nonNumeric = map[string]bool{"public": true, "restore_mode": true, "policy": true}

// set parses v into c's field name, as a query parameter or flag would.
func set(t *testing.T, c *Config, name, v string) error {
	t.Helper()
	f, ok := api.FieldByName(name)
	if !ok {
		t.Fatalf("no field %s", name)
	}
	return f.Set((*api.Config)(c), v)
}

// Every numeric field refuses NaN, infinities, negative and huge values,
// whether they fail to parse or to validate, and always as ErrInvalid.
func TestConfigRejectsBadNumbers(t *testing.T) {
	bad := []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "-1", "-0.5", "1e30", "99999999999999999999", "1e300", "9223372036854775807"}
	for _, f := range api.Fields {
		if nonNumeric[f.Name] {
			continue
		}
		for _, v := range bad {
			var c Config
			err := set(t, &c, f.Name, v)
			if err == nil {
				err = c.WithDefaults().Validate()
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%s=%s: %v, want ErrInvalid", f.Name, v, err)
			}
		}
	}
}

// NaN, which compares false with everything, was let through by the
// "< 0" check and later failed the record's encoding after the deploy's
// snapshot was written.
func TestConfigMissRateNaN(t *testing.T) {
	c := Config{}.WithDefaults()
	if err := set(t, &c, "rerecord_miss_rate", "NaN"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("NaN miss rate: %v", err)
	}
}

// Every field of api.Fields has exactly one check, and the checks name no
// other field.
func TestChecksCoverFields(t *testing.T) {
	for _, f := range api.Fields {
		if checks[f.Name] == nil {
			t.Errorf("field %s has no check", f.Name)
		}
	}
	if len(checks) != len(api.Fields) {
		t.Errorf("%d checks for %d fields", len(checks), len(api.Fields))
	}
}

// The wire's default mode is the restore package's, and the wire names
// the modes as the restore package does.
func TestModesMatchRestore(t *testing.T) {
	if restore.Mode(api.DefaultMode) != restore.Default {
		t.Errorf("api.DefaultMode %s, restore.Default %s", api.DefaultMode, restore.Default)
	}
	wire := []api.Mode{api.ModeCold, api.ModeEager, api.ModeMmap, api.ModeLazy, api.ModeReap, api.ModeBulk, api.ModeWarm}
	modes := append(restore.Modes, restore.Warm)
	if len(wire) != len(modes) {
		t.Fatalf("api has %d modes, restore %d", len(wire), len(modes))
	}
	for i, m := range modes {
		if restore.Mode(wire[i]) != m {
			t.Errorf("mode %d: api %s, restore %s", i, wire[i], m)
		}
	}
}

// A sample valid value per field, also used to check that every field
// parses and validates.
func TestFieldsAcceptValidValues(t *testing.T) {
	samples := map[string]string{"memory_mib": "64", "timeout": "2s", "init_timeout": "90", "min_instances": "1",
		"max_instances": "3", "max_queue": "5", "keep_alive": "10s", "public": "true", "restore_mode": "eager",
		"policy": "fixed:2", "pool_size": "4", "rerecord_miss_rate": "0.5", "engine": "wazero", "idempotent": "true"}
	var c Config
	for _, f := range api.Fields {
		v, ok := samples[f.Name]
		if !ok {
			t.Errorf("no sample for field %s", f.Name)
			continue
		}
		if err := set(t, &c, f.Name, v); err != nil {
			t.Errorf("%s=%s: %v", f.Name, v, err)
		}
	}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Errorf("JSON round trip %s: %+v, %v", b, back, err)
	}
}

// A function names a known engine or none; one this build lacks fails at
// deploy (engine.Open), an unknown one already here.
func TestConfigEngine(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "wazero": true, "wasmtime": true, "v8": false, "WAZERO": false} {
		err := Config{Engine: v}.WithDefaults().Validate()
		if ok != (err == nil) || !ok && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("engine %q: %v", v, err)
		}
	}
}
