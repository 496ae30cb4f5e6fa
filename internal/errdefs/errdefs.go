// Package errdefs defines the error categories shared by thaw's packages.
//
// Packages wrap these sentinels with %w and context; the HTTP server and the
// CLI map them to status codes and exit codes in exactly one place each.
package errdefs

import "errors"

var (
	// ErrNotFound: the named function, snapshot or object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the caller's input is malformed (module, config, request).
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: the input exceeds a configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrOverloaded: the function's queue is full.
	ErrOverloaded = errors.New("overloaded")
	// ErrTimeout: the guest ran past its deadline and was killed.
	ErrTimeout = errors.New("timeout")
	// ErrGuest: the guest trapped, panicked or returned a malformed response.
	ErrGuest = errors.New("guest fault")
	// ErrCorrupt: stored data failed a checksum or authentication.
	ErrCorrupt = errors.New("corrupt data")
	// ErrUnavailable: a dependency (pager, object store) is not reachable.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthorized: a required bearer token is missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrConflict: a compare-and-swap lost (the cluster registry changed
	// since it was read).
	ErrConflict = errors.New("conflict")
)

// Category names the category of err for metrics and logs ("not_found",
// "invalid", ...), or "internal" when it has none.
func Category(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{ErrNotFound, "not_found"}, {ErrInvalid, "invalid"}, {ErrTooLarge, "too_large"},
		{ErrOverloaded, "overloaded"}, {ErrTimeout, "timeout"}, {ErrGuest, "guest_fault"},
		{ErrCorrupt, "corrupt"}, {ErrUnavailable, "unavailable"}, {ErrUnauthorized, "unauthorized"}, {ErrConflict, "conflict"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "internal"
}
