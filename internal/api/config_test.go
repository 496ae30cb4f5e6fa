package api

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// jsonNames lists Config's JSON field names, from its struct tags.
func jsonNames(t *testing.T) []string {
	t.Helper()
	var names []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Fatalf("Config.%s has no JSON name", ct.Field(i).Name)
		}
		names = append(names, name)
	}
	return names
}

// sampleValues are a valid value for each kind of Config field, as a query
// parameter and as JSON.
var sampleValues = map[reflect.Type]struct{ query, json string }{
	reflect.TypeFor[int]():      {"3", `3`},
	reflect.TypeFor[float64]():  {"0.5", `0.5`},
	reflect.TypeFor[bool]():     {"true", `true`},
	reflect.TypeFor[string]():   {"fixed:2", `"fixed:2"`},
	reflect.TypeFor[Mode]():     {"eager", `"eager"`},
	reflect.TypeFor[Duration](): {"2s", `"2s"`},
}

// Every JSON field of Config is accepted as a query parameter of the same
// name, and sets the field as the same value in JSON does; Fields lists
// nothing else. A field added to Config without its Field fails here.
func TestQueryAcceptsEveryJSONField(t *testing.T) {
	names := jsonNames(t)
	ct := reflect.TypeFor[Config]()
	for i, name := range names {
		sample, ok := sampleValues[ct.Field(i).Type]
		if !ok {
			t.Errorf("field %s: no sample value of type %s in this test", name, ct.Field(i).Type)
			continue
		}
		var fromJSON, fromQuery Config
		if err := DecodeConfig([]byte(`{"`+name+`": `+sample.json+`}`), &fromJSON); err != nil {
			t.Errorf("JSON %s: %v", name, err)
			continue
		}
		if err := fromQuery.SetQuery(url.Values{name: {sample.query}}); err != nil {
			t.Errorf("query %s=%s: %v", name, sample.query, err)
			continue
		}
		if fromQuery == (Config{}) || fromQuery != fromJSON {
			t.Errorf("%s: query sets %+v, JSON %+v", name, fromQuery, fromJSON)
		}
	}
	var fieldNames []string
	for _, f := range Fields {
		fieldNames = append(fieldNames, f.Name)
	}
	if !reflect.DeepEqual(fieldNames, names) {
		t.Errorf("Fields are %v, Config's JSON fields %v", fieldNames, names)
	}
	var c Config
	if err := c.SetQuery(url.Values{"memory": {"1"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("unknown parameter: %v, want ErrInvalid", err)
	}
	if err := c.SetQuery(url.Values{"memory_mib": {"lots"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad integer: %v, want ErrInvalid", err)
	}
	if err := DecodeConfig([]byte(`{"memory": 32}`), &c); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("unknown JSON field: %v, want ErrInvalid", err)
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
	if b, err := json.Marshal(Duration(90 * time.Second)); err != nil || string(b) != `"1m30s"` {
		t.Errorf("90s = %s, %v", b, err)
	}
}

// WithDefaults fills zero fields only, and max_instances is at least
// min_instances.
func TestWithDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	want := Config{MemoryMiB: DefaultMemoryMiB, Timeout: Duration(DefaultTimeout), InitTimeout: Duration(DefaultInitTimeout),
		MaxInstances: DefaultMaxInstances, MaxQueue: DefaultMaxQueue, KeepAlive: Duration(DefaultKeepAlive),
		RestoreMode: DefaultMode, Policy: DefaultPolicy, PoolSize: DefaultPoolSize, RerecordMissRate: DefaultMissRate}
	if d != want {
		t.Errorf("defaults %+v, want %+v", d, want)
	}
	if c := (Config{MinInstances: 9}).WithDefaults(); c.MaxInstances != 9 {
		t.Errorf("min 9: max_instances %d", c.MaxInstances)
	}
	if c := (Config{MemoryMiB: 8, Public: true}).WithDefaults(); c.MemoryMiB != 8 || !c.Public {
		t.Errorf("set fields changed: %+v", c)
	}
}
