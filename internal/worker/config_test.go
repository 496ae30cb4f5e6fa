package worker

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// nonNumeric are the fields whose values are not numbers.
var nonNumeric = map[string]bool{"public": true, "restore_mode": true, "policy": true}

// Every numeric field refuses NaN, infinities, negative and huge values,
// whether they fail to parse or to validate, and always as ErrInvalid.
func TestConfigRejectsBadNumbers(t *testing.T) {
	bad := []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "-1", "-0.5", "1e30", "99999999999999999999", "1e300", "9223372036854775807"}
	for _, f := range Fields {
		if nonNumeric[f.Name] {
			continue
		}
		for _, v := range bad {
			var c Config
			err := f.Set(&c, v)
			if err == nil {
				err = c.WithDefaults().Validate()
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%s=%s: %v, want ErrInvalid", f.Name, v, err)
			}
		}
	}
}

// Durations given in JSON as huge numbers of seconds are refused rather
// than wrapped around into negative or tiny durations.
func TestDurationJSONRange(t *testing.T) {
	for _, in := range []string{`1e300`, `-1e300`, `9.3e9`, `"1e300"`, `"NaN"`, `"Inf"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s decoded to %v", in, d)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"1.5"`), &d); err != nil || d != Duration(1500e6) {
		t.Errorf(`"1.5" = %v, %v`, d, err)
	}
}

// NaN, which compares false with everything, was let through by the
// "< 0" check and later failed the record's encoding after the deploy's
// snapshot was written.
func TestConfigMissRateNaN(t *testing.T) {
	c := Config{}.WithDefaults()
	f, _ := FieldByName("rerecord_miss_rate")
	if err := f.Set(&c, "NaN"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("NaN miss rate: %v", err)
	}
}

// A sample valid value per field, also used to check that every field
// parses and validates.
func TestFieldsAcceptValidValues(t *testing.T) {
	samples := map[string]string{"memory_mib": "64", "timeout": "2s", "init_timeout": "90", "min_instances": "1",
		"max_instances": "3", "max_queue": "5", "keep_alive": "10s", "public": "true", "restore_mode": "eager",
		"policy": "fixed:2", "pool_size": "4", "rerecord_miss_rate": "0.5"}
	var c Config
	for _, f := range Fields {
		v, ok := samples[f.Name]
		if !ok {
			t.Errorf("no sample for field %s", f.Name)
			continue
		}
		if err := f.Set(&c, v); err != nil {
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
