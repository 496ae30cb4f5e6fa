package server

import (
	"reflect"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/worker"
)

// zeroFields names the fields of v (a struct, through pointers) that are
// zero, recursively.
func zeroFields(v reflect.Value, path string) []string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return []string{path}
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || v.Type() == reflect.TypeFor[time.Time]() {
		if v.IsZero() {
			return []string{path}
		}
		return nil
	}
	var out []string
	for i := range v.NumField() {
		out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
	}
	return out
}

// functionInfo carries every field of a worker.Info to the wire: a field
// added to either side without its mapping fails here.
func TestFunctionInfoMapsEveryField(t *testing.T) {
	in := worker.Info{Name: "f", Config: worker.Config(api.Config{}.WithDefaults()), ModuleSHA: "ab", ModuleSize: 1,
		Deployed: time.Unix(1, 0), Snapshot: &worker.SnapshotInfo{ID: "s", MemoryBytes: 2, DataBytes: 3, WSBytes: 4},
		Idle: 5, Busy: 6, PoolSnapshots: 7, Policy: "init"}
	in.Config.MinInstances, in.Config.Public, in.Config.Engine, in.Config.Idempotent = 1, true, "wazero", true
	if z := zeroFields(reflect.ValueOf(in), "worker.Info"); len(z) > 0 {
		t.Fatalf("test input leaves %v zero", z)
	}
	out := functionInfo(in)
	if z := zeroFields(reflect.ValueOf(out), "api.FunctionInfo"); len(z) > 0 {
		t.Errorf("not mapped: %v", z)
	}
	if out.Snapshot.WSBytes != 4 || out.Idle != 5 || out.Config != api.Config(in.Config) {
		t.Errorf("mapped %+v", out)
	}
	if l := functionList([]worker.Info{in, {Name: "g"}}); len(l.Functions) != 2 || l.Functions[1].Name != "g" {
		t.Errorf("list %+v", l)
	}
	if l := functionList(nil); l.Functions == nil {
		t.Error("an empty list is null on the wire, want []")
	}
}
