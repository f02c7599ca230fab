// Package loki asks Loki's query_range API for log lines, as verify looks
// for a crash canary's line and die event.
//
// It queries and decodes; it must not judge what it finds (the checks do)
// or know credentials and tenants (the HTTP client it is given carries them).
package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hy-home/hyhome/internal/human"
)

// Client queries one Loki.
type Client struct {
	// URL is Loki's base URL, without a trailing slash.
	URL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Log receives a debug line per query; nil discards.
	Log *slog.Logger
}

// Entry is one log line Loki returned.
type Entry struct {
	Time   time.Time
	Line   string
	Labels map[string]string
}

// QueryRange runs query_range over (start, end] and returns the entries,
// stream by stream, oldest first within each.
func (c *Client) QueryRange(ctx context.Context, query string, start, end time.Time, limit int) ([]Entry, error) {
	q := url.Values{
		"query":     {query},
		"start":     {strconv.FormatInt(start.UnixNano(), 10)},
		"end":       {strconv.FormatInt(end.UnixNano(), 10)},
		"limit":     {strconv.Itoa(limit)},
		"direction": {"forward"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/loki/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the whole URL, query string and all, again
		}
		return nil, fmt.Errorf("query_range: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("query_range: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query_range: it answered %s: %s", resp.Status, human.Truncate(strings.TrimSpace(string(body)), 200))
	}
	out, err := decode(body)
	if err != nil {
		return nil, err
	}
	if c.Log != nil {
		c.Log.Debug("loki query_range", "query", query, "entries", len(out))
	}
	return out, nil
}

// decode reads a query_range answer of streams.
func decode(body []byte) ([]Entry, error) {
	var doc struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string   `json:"stream"`
				Values [][]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("query_range: decoding the answer: %w", err)
	}
	if doc.Status != "success" || doc.Data.ResultType != "streams" {
		return nil, fmt.Errorf("query_range: status %q, result type %q: want success, streams", doc.Status, doc.Data.ResultType)
	}
	var out []Entry
	for _, st := range doc.Data.Result {
		for _, val := range st.Values {
			// [ts, line] or, with categorised labels, [ts, line, metadata].
			if len(val) < 2 {
				return nil, fmt.Errorf("query_range: a value with %d elements", len(val))
			}
			var tsStr, line string
			if err := json.Unmarshal(val[0], &tsStr); err != nil {
				return nil, fmt.Errorf("query_range: a bad timestamp %s: %w", val[0], err)
			}
			if err := json.Unmarshal(val[1], &line); err != nil {
				return nil, fmt.Errorf("query_range: a bad line: %w", err)
			}
			ns, err := strconv.ParseInt(tsStr, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("query_range: a bad timestamp %q: %w", tsStr, err)
			}
			out = append(out, Entry{Time: time.Unix(0, ns), Line: line, Labels: st.Stream})
		}
	}
	return out, nil
}
