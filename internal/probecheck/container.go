package probecheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/dockerapi"
)

// Container asks a Docker engine (or a compatible one) whether containers
// run and, when they have a health check, are healthy. One of Name, Labels
// and NamePrefix is set.
type Container struct {
	Socket     string   // the engine's unix socket
	Name       string   // exact name or ID, or
	Labels     []string // each key or key=value; a container must have all, or
	NamePrefix string   // name prefix
	// Any: one healthy container of those Labels or NamePrefix match is
	// enough (otherwise all must be).
	Any bool
}

// minIDPrefix is the shortest ID prefix that names a container: the
// length of the IDs docker ps shows.
const minIDPrefix = 12

// maxContainers bounds how many containers one attempt inspects.
const maxContainers = 64

// Check inspects the containers once.
func (c *Container) Check(ctx context.Context) (Outcome, error) {
	// The client keeps no connection between requests: one per attempt
	// costs an allocation, not a handshake more.
	api := dockerapi.New(c.Socket)
	timeout := deadlineOf(ctx)
	if c.Name != "" {
		ct, err := inspect(ctx, api, c.Name)
		if err != nil {
			return Outcome{}, ctxErr(ctx, err, timeout)
		}
		o := Outcome{Containers: []cache.Container{ct}}
		if !ct.OK {
			return o, errors.New(verdict(c.Name, ct))
		}
		o.Msg = verdict("", ct)
		return o, nil
	}
	ids, err := c.list(ctx, api)
	if err != nil {
		return Outcome{}, ctxErr(ctx, err, timeout)
	}
	if len(ids) == 0 {
		return Outcome{}, fmt.Errorf("no container %s", c.what())
	}
	if len(ids) > maxContainers {
		return Outcome{}, fmt.Errorf("%d containers %s; at most %d are checked: narrow the match", len(ids), c.what(), maxContainers)
	}
	o := Outcome{Containers: make([]cache.Container, 0, len(ids))}
	healthy := 0
	var bad []string
	for _, id := range ids {
		ct, err := inspect(ctx, api, id)
		if err != nil {
			if ctx.Err() != nil {
				return Outcome{Containers: o.Containers}, ctxErr(ctx, err, timeout)
			}
			if !errors.Is(err, dockerapi.ErrNotFound) {
				// The engine could not say (an error of its own, the
				// socket gone): this attempt failed, whatever the
				// others say, and the error is its reason.
				return Outcome{Containers: o.Containers}, fmt.Errorf("inspect container %s: %w", shortID(id), err)
			}
			// Removed between the list and the inspect: not healthy.
			ct = cache.Container{Name: id, ID: shortID(id), State: "removed"}
		}
		o.Containers = append(o.Containers, ct)
		if ct.OK {
			healthy++
		} else {
			bad = append(bad, verdict(ct.Name, ct))
		}
	}
	slices.SortFunc(o.Containers, func(a, b cache.Container) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(bad)
	want := "all"
	if c.Any {
		want = "any"
	}
	summary := fmt.Sprintf("%d/%d containers %s healthy (want %s)", healthy, len(ids), c.what(), want)
	if healthy == len(ids) || (c.Any && healthy > 0) {
		o.Msg = summary
		return o, nil
	}
	return o, errors.New(summary + ": " + strings.Join(bad, "; "))
}

// what describes the match: `with label "a=b"`, `with labels "a=b", "c=d"`
// or `named "app-*"`.
func (c *Container) what() string {
	if len(c.Labels) > 0 {
		q := make([]string, len(c.Labels))
		for i, l := range c.Labels {
			q[i] = strconv.Quote(l)
		}
		if len(q) == 1 {
			return "with label " + q[0]
		}
		return "with labels " + strings.Join(q, ", ")
	}
	return "named " + strconv.Quote(c.NamePrefix+"*")
}

// verdict says how a container is: "running, healthy", or, with a name,
// "container web is exited".
func verdict(name string, ct cache.Container) string {
	var s string
	switch {
	case ct.State != "running":
		s = "is " + orUnknown(ct.State)
	case ct.Health != "" && ct.Health != "healthy":
		s = "is running but " + ct.Health
	case ct.Health == "healthy":
		s = "running, healthy"
	default:
		s = "running"
	}
	if name == "" {
		return s
	}
	if ct.OK {
		return name + " " + s
	}
	return "container " + name + " " + s
}

// list returns the IDs of the containers the label or prefix matches,
// running or not (a stopped match is an unhealthy one, not a missing one).
func (c *Container) list(ctx context.Context, api *dockerapi.Client) ([]string, error) {
	filters := map[string][]string{}
	if len(c.Labels) > 0 {
		filters["label"] = c.Labels // the engine wants every one
	} else {
		// The engine's name filter matches anywhere in the name; the
		// prefix is checked below.
		filters["name"] = []string{c.NamePrefix}
	}
	list, err := api.List(ctx, filters)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range list {
		if c.NamePrefix != "" {
			match := false
			for _, n := range s.Names {
				if strings.HasPrefix(strings.TrimPrefix(n, "/"), c.NamePrefix) {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// inspect reads one container's state.
func inspect(ctx context.Context, api *dockerapi.Client, nameOrID string) (cache.Container, error) {
	st, err := api.Inspect(ctx, nameOrID)
	if err != nil {
		if errors.Is(err, dockerapi.ErrNotFound) {
			return cache.Container{}, noSuchContainer(nameOrID)
		}
		return cache.Container{}, err
	}
	// The engine resolves a name it does not know as an ID prefix: with
	// container "db" removed, "db" would answer for whatever container's ID
	// starts with db. Only the name itself, or an ID prefix as long as the
	// short IDs docker ps shows, names a container.
	if strings.TrimPrefix(st.Name, "/") != nameOrID && !(len(nameOrID) >= minIDPrefix && strings.HasPrefix(st.ID, nameOrID)) {
		return cache.Container{}, fmt.Errorf("no such container %q (the engine took it for an ID prefix of container %s; an ID needs at least %d characters)",
			nameOrID, strings.TrimPrefix(st.Name, "/"), minIDPrefix)
	}
	ct := cache.Container{Name: strings.TrimPrefix(st.Name, "/"), ID: shortID(st.ID), State: st.State.Status}
	if h := st.State.Health; h != nil && h.Status != "none" {
		ct.Health = h.Status
	}
	ct.OK = ct.State == "running" && (ct.Health == "" || ct.Health == "healthy")
	return ct, nil
}

// noSuchContainer is the engine's 404 for a name or ID.
type noSuchContainer string

func (e noSuchContainer) Error() string { return "no such container " + strconv.Quote(string(e)) }

func (noSuchContainer) Is(target error) bool { return target == dockerapi.ErrNotFound }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

// ValidContainerName reports whether s may start a Docker container name
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
func ValidContainerName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}
