// Package dockerapi is the little of the Docker Engine API the container
// probe needs: list containers by filter and inspect one, over the
// engine's unix socket, with the API version pinned in every path.
package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// APIVersion is the Docker Engine API version every request names
// in its path: an engine that speaks a newer one still answers in this
// version's shape. 1.40 is Docker 19.03; newer engines (and Podman's
// compatible service) accept it.
const APIVersion = "v1.40"

// Client talks to one engine socket. It is safe for concurrent use.
type Client struct {
	http *http.Client
	base string // http://docker/v1.40 (the transport always dials the socket)
}

// MaxResponseHeader bounds the headers of an Engine API answer; more fails
// the request.
const MaxResponseHeader = 64 << 10

// New returns a client for the engine listening on the unix socket.
func New(socket string) *Client {
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		// As the HTTP probe: net/http would read 10 MiB of headers.
		MaxResponseHeaderBytes: MaxResponseHeader,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{http: &http.Client{Transport: tr}, base: "http://docker/" + APIVersion}
}

// Inspect is the part of the Engine API's ContainerInspect answer
// we read.
type Inspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Status  string `json:"Status"`
		Running bool   `json:"Running"`
		Health  *struct {
			Status string `json:"Status"`
		} `json:"Health"`
	} `json:"State"`
}

// Summary is the part of a ContainerList entry we read.
type Summary struct {
	ID    string   `json:"Id"`
	Names []string `json:"Names"`
}

// Inspect reads one container's state; ErrNotFound when there is none.
func (c *Client) Inspect(ctx context.Context, nameOrID string) (Inspect, error) {
	var st Inspect
	err := c.get(ctx, "/containers/"+url.PathEscape(nameOrID)+"/json", &st)
	return st, err
}

// List returns the containers the filters match (the engine's filter
// syntax: "label", "name"...), running or not.
func (c *Client) List(ctx context.Context, filters map[string][]string) ([]Summary, error) {
	f, err := json.Marshal(filters)
	if err != nil {
		return nil, err
	}
	var list []Summary
	if err := c.get(ctx, "/containers/json?all=1&filters="+url.QueryEscape(string(f)), &list); err != nil {
		return nil, err
	}
	return list, nil
}

// ErrNotFound is the engine's 404.
var ErrNotFound = errors.New("not found")

// get asks the engine for path and decodes the JSON answer into v.
func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode != http.StatusOK:
		var m struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&m)
		if m.Message != "" {
			return fmt.Errorf("engine API answered HTTP %d: %s", resp.StatusCode, m.Message)
		}
		return fmt.Errorf("engine API answered HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode engine answer: %w", err)
	}
	return nil
}
