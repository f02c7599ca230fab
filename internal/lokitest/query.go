package lokitest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseTime reads a query time the way Loki's loghttp does: an integer is
// Unix seconds when it has at most 10 digits and nanoseconds otherwise, a
// decimal is Unix seconds, anything else must be RFC 3339.
func parseTime(v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if strings.Contains(v, ".") {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)), nil
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t, terr := time.Parse(time.RFC3339Nano, v)
		if terr != nil {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", v)
		}
		return t, nil
	}
	if len(strings.TrimPrefix(v, "-")) <= 10 {
		return time.Unix(n, 0), nil
	}
	return time.Unix(0, n), nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleQueryRange(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	query := r.Form.Get("query")
	if query == "" {
		http.Error(w, "query parameter is required", http.StatusBadRequest)
		return
	}
	now := s.cfg.Now()
	end, err := parseTime(r.Form.Get("end"), now)
	if err != nil {
		http.Error(w, "end: "+err.Error(), http.StatusBadRequest)
		return
	}
	lookback := time.Hour
	if since := r.Form.Get("since"); since != "" {
		d, err := time.ParseDuration(since)
		if err != nil {
			http.Error(w, "since: "+err.Error(), http.StatusBadRequest)
			return
		}
		lookback = d
	}
	start, err := parseTime(r.Form.Get("start"), end.Add(-lookback))
	if err != nil {
		http.Error(w, "start: "+err.Error(), http.StatusBadRequest)
		return
	}
	if end.Before(start) {
		http.Error(w, "end timestamp must not be before or equal to start time", http.StatusBadRequest)
		return
	}
	limit, forward, err := limitAndDirection(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	streams, err := s.Query(tenant, query, start, end, limit, forward)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type jsonStream struct {
		Stream Labels      `json:"stream"`
		Values [][2]string `json:"values"`
	}
	result := make([]jsonStream, 0, len(streams))
	total := 0
	for _, st := range streams {
		js := jsonStream{Stream: st.Labels, Values: make([][2]string, 0, len(st.Entries))}
		for _, e := range st.Entries {
			js.Values = append(js.Values, [2]string{strconv.FormatInt(e.Timestamp.UnixNano(), 10), e.Line})
		}
		total += len(st.Entries)
		result = append(result, js)
	}
	writeJSON(w, map[string]any{
		"status": "success",
		"data": map[string]any{
			"resultType": "streams",
			"result":     result,
			"stats":      map[string]any{"summary": map[string]any{"totalEntriesReturned": total}},
		},
	})
}

func limitAndDirection(r *http.Request) (int, bool, error) {
	limit := 100
	if v := r.Form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, false, fmt.Errorf("limit must be a positive integer, got %q", v)
		}
		limit = n
	}
	switch d := strings.ToLower(r.Form.Get("direction")); d {
	case "", "backward":
		return limit, false, nil
	case "forward":
		return limit, true, nil
	default:
		return 0, false, fmt.Errorf("invalid direction %q: want forward or backward", d)
	}
}

// handleQuery serves /loki/api/v1/query. Loki refuses log queries there
// ("log queries are not supported as an instant query type"), and this
// server supports no metric queries, so it validates and refuses.
func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, _ string) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := ParseQuery(r.Form.Get("query")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Error(w, "log queries are not supported as an instant query type, please change your query to a range query type", http.StatusBadRequest)
}

// window reads start/end for the metadata endpoints (default: the last 6 h).
func (s *Server) window(r *http.Request) (time.Time, time.Time, error) {
	now := s.cfg.Now()
	end, err := parseTime(r.Form.Get("end"), now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("end: %w", err)
	}
	start, err := parseTime(r.Form.Get("start"), end.Add(-6*time.Hour))
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("start: %w", err)
	}
	return start, end, nil
}

// seriesIn returns the label sets of tenant's streams with an entry in
// [start, end) matching any of the selectors (all streams when none).
func (s *Server) seriesIn(tenant string, selectors [][]*Matcher, start, end time.Time) []Labels {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[tenant]
	if ts == nil {
		return nil
	}
	var out []Labels
	for _, st := range ts.streams {
		if len(selectors) > 0 && !slices.ContainsFunc(selectors, func(ms []*Matcher) bool { return matchAll(ms, st.labels) }) {
			continue
		}
		if slices.ContainsFunc(st.entries, func(e Entry) bool { return !e.Timestamp.Before(start) && e.Timestamp.Before(end) }) { // any order will do
			out = append(out, st.labels)
		}
	}
	slices.SortFunc(out, func(a, b Labels) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func (s *Server) metadataRequest(w http.ResponseWriter, r *http.Request, tenant, param string) ([]Labels, bool) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	start, end, err := s.window(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	var selectors [][]*Matcher
	for _, q := range r.Form[param] {
		ms, err := ParseSelector(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return nil, false
		}
		selectors = append(selectors, ms)
	}
	return s.seriesIn(tenant, selectors, start, end), true
}

func (s *Server) handleLabels(w http.ResponseWriter, r *http.Request, tenant string) {
	series, ok := s.metadataRequest(w, r, tenant, "query")
	if !ok {
		return
	}
	set := map[string]bool{}
	for _, ls := range series {
		for _, l := range ls {
			set[l.Name] = true
		}
	}
	writeJSON(w, map[string]any{"status": "success", "data": sortedKeys(set)})
}

func (s *Server) handleLabelValues(w http.ResponseWriter, r *http.Request, tenant string) {
	name := r.PathValue("name")
	series, ok := s.metadataRequest(w, r, tenant, "query")
	if !ok {
		return
	}
	set := map[string]bool{}
	for _, ls := range series {
		if v := ls.Get(name); v != "" {
			set[v] = true
		}
	}
	writeJSON(w, map[string]any{"status": "success", "data": sortedKeys(set)})
}

func (s *Server) handleSeries(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(r.Form["match[]"]) == 0 {
		http.Error(w, "at least one match[] argument is required", http.StatusBadRequest)
		return
	}
	series, ok := s.metadataRequest(w, r, tenant, "match[]")
	if !ok {
		return
	}
	if series == nil {
		series = []Labels{}
	}
	writeJSON(w, map[string]any{"status": "success", "data": series})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
