package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Client calls a thaw server's API. Errors the server reports carry their
// errdefs category, so callers (the CLI) map them like local errors.
type Client struct {
	// BaseURL is the server's address, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Token is sent as a bearer token when set.
	Token string
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
}

// Error is an error the server reported.
type Error struct {
	Status   int
	Category string
	Message  string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d", e.Status)
	}
	return e.Message
}

// Unwrap returns the errdefs sentinel of the error's category, so
// errors.Is(err, errdefs.ErrNotFound) works across the wire.
func (e *Error) Unwrap() error {
	for _, s := range []error{errdefs.ErrNotFound, errdefs.ErrInvalid, errdefs.ErrTooLarge, errdefs.ErrOverloaded,
		errdefs.ErrTimeout, errdefs.ErrGuest, errdefs.ErrCorrupt, errdefs.ErrUnavailable, errdefs.ErrUnauthorized, errdefs.ErrConflict} {
		if errdefs.Category(s) == e.Category {
			return s
		}
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %v: %w", method, path, err, errdefs.ErrInvalid)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// do sends req and returns the response, or the server's error.
func (c *Client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %v: %w", req.Method, req.URL.Redacted(), err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	return c.read(req, resp)
}

// read reads resp's body and returns it, or the server's error.
func (c *Client) read(req *http.Request, resp *http.Response) (*http.Response, []byte, error) {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read response: %v: %w", req.Method, req.URL.Redacted(), err, errdefs.ErrUnavailable)
	}
	if cat := resp.Header.Get(HeaderError); cat != "" || (resp.StatusCode >= 400 && !strings.HasPrefix(req.URL.Path, "/fn/")) {
		e := &Error{Status: resp.StatusCode, Category: cat}
		var eb ErrorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			e.Message = eb.Error
		} else {
			e.Message = strings.TrimSpace(string(body))
		}
		if e.Category == "" {
			e.Category = categoryOfStatus(resp.StatusCode)
		}
		return resp, body, e
	}
	return resp, body, nil
}

// categoryOfStatus guesses a category for an error response without
// X-Thaw-Error (e.g. from a proxy in front of the server).
func categoryOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "overloaded"
	case http.StatusBadGateway:
		return "guest_fault"
	case http.StatusGatewayTimeout:
		return "timeout"
	case http.StatusUnauthorized, http.StatusForbidden:
		return "unauthorized"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusConflict:
		return "conflict"
	}
	return "internal"
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	_, body, err := c.do(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	return nil
}

// Deploy deploys or replaces a function.
func (c *Client) Deploy(ctx context.Context, name string, wasm []byte, cfg Config) (*FunctionInfo, error) {
	return c.DeployProgress(ctx, name, wasm, cfg, nil)
}

// DeployProgress is Deploy reporting the deploy's stages as the server
// reaches them: with fn set it asks for the progress stream
// (ContentTypeProgress) and calls fn with each event, the final done or
// error event included. A server that answers with one JSON body instead
// (one older than the stream, or an error found before the deploy began)
// is answered as by Deploy, with no events.
func (c *Client) DeployProgress(ctx context.Context, name string, wasm []byte, cfg Config, fn func(DeployEvent)) (*FunctionInfo, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/functions/"+url.PathEscape(name), bytes.NewReader(wasm))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/wasm")
	req.Header.Set(HeaderConfig, string(b))
	if fn != nil {
		req.Header.Set("Accept", ContentTypeProgress+", application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %w", req.Method, req.URL.Redacted(), err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); fn != nil && mt == ContentTypeProgress && resp.StatusCode == http.StatusOK {
		return ReadDeployEvents(resp.Body, fn)
	}
	_, body, err := c.read(req, resp)
	if err != nil {
		return nil, err
	}
	var info FunctionInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("deploy %s: decode: %v: %w", name, err, errdefs.ErrUnavailable)
	}
	return &info, nil
}

// List describes every function.
func (c *Client) List(ctx context.Context) ([]FunctionInfo, error) {
	var lr FunctionList
	if err := c.getJSON(ctx, "/v1/functions", &lr); err != nil {
		return nil, err
	}
	return lr.Functions, nil
}

// Get describes one function.
func (c *Client) Get(ctx context.Context, name string) (*FunctionInfo, error) {
	var info FunctionInfo
	if err := c.getJSON(ctx, "/v1/functions/"+url.PathEscape(name), &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Delete removes a function.
func (c *Client) Delete(ctx context.Context, name string) error {
	req, err := c.newRequest(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	_, _, err = c.do(req)
	return err
}

// InvokeRequest is a request to a function.
type InvokeRequest struct {
	// Method defaults to GET, or POST when Body is set.
	Method string
	// Path is the path after the function's name, with an optional query
	// ("/items?id=3"); default "/".
	Path   string
	Header http.Header
	Body   []byte
	// Mode and DropCache set the experiment headers.
	Mode      Mode
	DropCache bool
}

// InvokeResponse is a function's answer with the server's timing.
type InvokeResponse struct {
	Status int
	Header http.Header
	Body   []byte
	// Start is how the serving instance started (cold, warm, restore).
	Start string
	// Timing is the parsed Server-Timing header.
	Timing []Metric
}

// Metric returns the named Server-Timing metric.
func (r *InvokeResponse) Metric(name string) (Metric, bool) {
	for _, m := range r.Timing {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// method is ir's method: Method, else GET, or POST with a body.
func (ir *InvokeRequest) method() string {
	if ir.Method != "" {
		return ir.Method
	}
	if ir.Body != nil {
		return http.MethodPost
	}
	return http.MethodGet
}

// path is ir's path, "/" by default, with a leading slash.
func (ir *InvokeRequest) path() string {
	switch {
	case ir.Path == "":
		return "/"
	case !strings.HasPrefix(ir.Path, "/"):
		return "/" + ir.Path
	}
	return ir.Path
}

// addHeaders adds every value of from to to.
func addHeaders(to, from http.Header) {
	for k, vs := range from {
		for _, v := range vs {
			to.Add(k, v)
		}
	}
}

// Invoke calls a function. A non-2xx status from the function itself is not
// an error; an error the platform reports (timeout, guest fault, ...) is.
func (c *Client) Invoke(ctx context.Context, name string, ir *InvokeRequest) (*InvokeResponse, error) {
	req, err := c.newRequest(ctx, ir.method(), "/fn/"+url.PathEscape(name)+ir.path(), bytes.NewReader(ir.Body))
	if err != nil {
		return nil, err
	}
	addHeaders(req.Header, ir.Header)
	if ir.Mode != "" {
		req.Header.Set(HeaderMode, string(ir.Mode))
	}
	if ir.DropCache {
		req.Header.Set(HeaderDropCache, "1")
	}
	resp, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", name, err)
	}
	out := &InvokeResponse{Status: resp.StatusCode, Header: resp.Header, Body: body, Start: resp.Header.Get(HeaderStart)}
	if v := resp.Header.Get(HeaderServerTiming); v != "" {
		if out.Timing, err = ParseServerTiming(v); err != nil {
			// A malformed header is the server's fault, not the
			// caller's: no category (errdefs.ErrInvalid would say so).
			return out, fmt.Errorf("invoke %s: %v", name, err)
		}
	}
	return out, nil
}
