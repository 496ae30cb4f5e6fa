package async

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// A queued invocation is one message: a 4-byte big-endian length, that many
// bytes of JSON metadata (Invocation without its body), then the body as
// is, so that a binary body is neither escaped nor base64-expanded.

// encode frames inv as a message.
func encode(inv *Invocation) ([]byte, error) {
	meta, err := json.Marshal(inv)
	if err != nil {
		return nil, fmt.Errorf("async: encode: %w", err)
	}
	out := make([]byte, 4, 4+len(meta)+len(inv.Body))
	binary.BigEndian.PutUint32(out, uint32(len(meta)))
	out = append(out, meta...)
	return append(out, inv.Body...), nil
}

// decode parses a message framed by encode.
func decode(data []byte) (*Invocation, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("async: message of %d bytes: %w", len(data), errdefs.ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) {
		return nil, fmt.Errorf("async: metadata of %d bytes in a message of %d: %w", n, len(data), errdefs.ErrCorrupt)
	}
	var inv Invocation
	if err := json.Unmarshal(data[4:4+n], &inv); err != nil {
		return nil, fmt.Errorf("async: metadata: %v: %w", err, errdefs.ErrCorrupt)
	}
	if ValidID(inv.ID) != nil || inv.Function == "" {
		return nil, fmt.Errorf("async: metadata without a valid id and function: %w", errdefs.ErrCorrupt)
	}
	inv.Body = data[4+n:]
	return &inv, nil
}
