package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
)

func errNoRoute(r *http.Request) error {
	return fmt.Errorf("no endpoint %s %s: %w", r.Method, r.URL.Path, errdefs.ErrNotFound)
}

func errUnauthorized(what string) error {
	return fmt.Errorf("%s requires \"Authorization: Bearer <token>\": %w", what, errdefs.ErrUnauthorized)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, functionList(s.b.List()))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Get(r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, functionInfo(*info))
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if err := s.b.Delete(r.Context(), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deploy deploys a function. With api.ContentTypeProgress in Accept it
// answers with the deploy's progress stream (progressStream) once the
// module is read; errors before that are ordinary error responses.
// clusterState serves GET /v1/cluster.
func (s *Server) clusterState(c Cluster) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, clusterInfo(c.ID(), c.State()))
	}
}

// drain serves POST (on) and DELETE (off) /v1/cluster/drain/{node}.
func (s *Server) drain(c Cluster, on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := c.Drain(r.Context(), r.PathValue("node"), on); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if err := worker.ValidName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	wasm, cfg, err := s.readDeploy(w, r)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("deploy %s: %w", name, err))
		return
	}
	liftReadDeadline(w) // the deploy itself may take longer than the read timeout
	ctx := r.Context()
	var stream *progressStream
	if api.AcceptsProgress(r.Header.Get("Accept")) {
		stream = s.newProgressStream(w, start)
		ctx = worker.WithDeployProgress(ctx, stream.hook())
	}
	info, err := s.b.Deploy(ctx, name, wasm, workerConfig(cfg))
	switch {
	case err != nil && stream != nil:
		stream.fail(r, err)
	case err != nil:
		s.writeError(w, r, err)
	case stream != nil:
		stream.done(*info)
	default:
		writeJSON(w, http.StatusOK, functionInfo(*info))
	}
	if err == nil {
		s.log.Debug("deploy request served", "function", name, "bytes", len(wasm), "remote", r.RemoteAddr)
	}
}

// readDeploy reads a deploy's module and configuration from either a
// multipart form (parts "module" and "config") or a raw module body with the
// configuration in the X-Thaw-Config header and query parameters.
func (s *Server) readDeploy(w http.ResponseWriter, r *http.Request) ([]byte, api.Config, error) {
	var cfg api.Config
	// A form's other parts and boundaries are small; allow them a little
	// room. readModule applies the exact limit to the module itself.
	limit := s.maxModule + 1<<20
	if r.ContentLength > limit {
		return nil, cfg, fmt.Errorf("request of %d bytes exceeds the %d-byte module limit: %w", r.ContentLength, s.maxModule, errdefs.ErrTooLarge)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		mt, err = "application/wasm", nil
	}
	if err != nil {
		return nil, cfg, fmt.Errorf("content type %q: %v: %w", ct, err, errdefs.ErrInvalid)
	}
	var wasm []byte
	switch mt {
	case "application/wasm", "application/octet-stream":
		// The module is read before a bad configuration is reported: the
		// caller holds the token, and a client still sending its body when
		// the connection closes sees a reset instead of the 400.
		var cfgErr error
		if h := r.Header.Get(api.HeaderConfig); h != "" {
			if err := api.DecodeConfig([]byte(h), &cfg); err != nil {
				cfgErr = fmt.Errorf("%s header: %w", api.HeaderConfig, err)
			}
		}
		if cfgErr == nil {
			cfgErr = cfg.SetQuery(r.URL.Query())
		}
		if wasm, err = s.readModule(r.Body); err != nil {
			return nil, cfg, err
		}
		if cfgErr != nil {
			return nil, cfg, cfgErr
		}
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, cfg, fmt.Errorf("multipart: %v: %w", err, errdefs.ErrInvalid)
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, cfg, fmt.Errorf("multipart: %w", invalidUnlessTooLarge(err))
			}
			switch p.FormName() {
			case "module":
				if wasm, err = s.readModule(p); err != nil {
					return nil, cfg, err
				}
			case "config":
				b, err := io.ReadAll(io.LimitReader(p, 1<<20))
				if err != nil {
					return nil, cfg, fmt.Errorf("config part: %w", invalidUnlessTooLarge(err))
				}
				if err := api.DecodeConfig(b, &cfg); err != nil {
					return nil, cfg, fmt.Errorf("config part: %w", err)
				}
			default:
				return nil, cfg, fmt.Errorf("unexpected form part %q (want module and config): %w", p.FormName(), errdefs.ErrInvalid)
			}
		}
		if wasm == nil {
			return nil, cfg, fmt.Errorf("form has no \"module\" part: %w", errdefs.ErrInvalid)
		}
	default:
		return nil, cfg, fmt.Errorf("content type %q: want application/wasm or multipart/form-data: %w", mt, errdefs.ErrInvalid)
	}
	if len(wasm) == 0 {
		return nil, cfg, fmt.Errorf("empty module: %w", errdefs.ErrInvalid)
	}
	return wasm, cfg, nil
}

// readModule reads at most maxModule bytes, failing with ErrTooLarge past it.
func (s *Server) readModule(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, s.maxModule+1))
	if err != nil {
		return nil, fmt.Errorf("read module: %w", invalidUnlessTooLarge(err))
	}
	if int64(len(b)) > s.maxModule {
		return nil, fmt.Errorf("module exceeds the %d-byte limit: %w", s.maxModule, errdefs.ErrTooLarge)
	}
	return b, nil
}

// invalidUnlessTooLarge classifies a body read error: the size limit is
// ErrTooLarge, anything else is a malformed request.
func invalidUnlessTooLarge(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("request exceeds %d bytes: %w", mbe.Limit, errdefs.ErrTooLarge)
	}
	return fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
}
