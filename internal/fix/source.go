package fix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/compose"
	"github.com/hy-home/hyhome/internal/safefile"
)

// source is one compose file as fix sees it: the bytes as read, the node
// tree the YAML library builds from them, and what it takes to turn a
// node's line and column into a byte offset. Edits are splices of these
// bytes; the tree is only read.
type source struct {
	path string
	mode os.FileMode
	data []byte
	root *yaml.Node // the top-level mapping
	// lineStart[i] is the offset of line i+1.
	lineStart []int
	// bom is the length of a UTF-8 byte order mark the parser skipped.
	bom  int
	crlf bool
	// parent maps a node to the collection holding it (aliases are not
	// followed, so an anchored node has exactly one parent).
	parent map[*yaml.Node]*yaml.Node
	// at indexes nodes by line and column.
	at map[[2]int][]*yaml.Node
	// indent is the file's usual indentation step, seqIndent the usual
	// offset of a block sequence's dash from its key.
	indent, seqIndent int
}

var errDecline = errors.New("declined")

// maxFileSize bounds a file fix reads itself (one compose did not hand it:
// an extended or included file); compose's default bound.
const maxFileSize = 16 << 20

// declinef is an edit fix will not guess at: it becomes a suggestion with
// the reason.
func declinef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errDecline, fmt.Sprintf(format, args...))
}

func readSource(path string) (*source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	b, err := safefile.ReadFile(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading compose file: %w", err)
	}
	return parseSource(path, fi.Mode().Perm(), b)
}

// parseSource parses b; a panic in the YAML library becomes an error. A
// file of several YAML documents is refused: compose merges them, and an
// edit of one could be overridden by the next.
func parseSource(path string, mode os.FileMode, b []byte) (s *source, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%s: cannot parse YAML: %v", path, r)
		}
	}()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty compose file", path)
		}
		return nil, fmt.Errorf("%s: invalid YAML: %w", path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, declinef("%s holds several YAML documents; fix edits one-document files", path)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the top level of a compose file must be a mapping", path)
	}
	if line := oddLineBreak(b); line > 0 {
		return nil, declinef("%s:%d: a line break other than LF or CRLF (a lone CR, NEL, LS or PS); fix edits files whose lines end in LF or CRLF", path, line)
	}
	return newSource(path, mode, b, doc.Content[0]), nil
}

// newSource indexes a parsed file.
func newSource(path string, mode os.FileMode, b []byte, root *yaml.Node) *source {
	s := &source{path: path, mode: mode, data: b, root: root, parent: map[*yaml.Node]*yaml.Node{}, at: map[[2]int][]*yaml.Node{}}
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		s.bom = 3
	}
	s.lineStart = append(s.lineStart, 0)
	for i, c := range b {
		if c == '\n' {
			s.lineStart = append(s.lineStart, i+1)
		}
	}
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		s.crlf = true
	}
	s.index(s.root, nil)
	s.indent, s.seqIndent = s.inferIndent()
	return s
}

// fromParsed takes a file compose parsed, unless it may hold several
// documents (compose-go merges them; fix parses such a file itself and
// refuses it).
func fromParsed(p compose.Parsed) (*source, bool) {
	if p.Root == nil || p.Root.Kind != yaml.MappingNode || multiDocument(p.Data) || oddLineBreak(p.Data) > 0 {
		return nil, false
	}
	fi, err := os.Stat(p.Path)
	if err != nil {
		return nil, false
	}
	return newSource(p.Path, fi.Mode().Perm(), p.Data, p.Root), true
}

// oddLineBreak returns the line (counted in LF, 1-based) of the first line
// break that is not LF or CRLF, or 0. YAML also breaks lines at a lone CR,
// NEL, LS and PS (yaml's is_break), so its node positions and fix's LF line
// index would disagree there: fix declines such a file instead of editing
// at the wrong place.
func oddLineBreak(b []byte) int {
	line := 1
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\n':
			line++
		case b[i] == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			return line
		case b[i] == 0xC2 && i+1 < len(b) && b[i+1] == 0x85,
			b[i] == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9):
			return line
		}
	}
	return 0
}

// multiDocument reports whether a file may hold a document marker after
// its start (a line beginning with --- or ...).
func multiDocument(b []byte) bool {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		line := b[i:]
		if j >= 0 {
			line = b[i : i+j]
		}
		if i > 0 && (bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("..."))) {
			return true
		}
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

func (s *source) index(n, parent *yaml.Node) {
	if n == nil {
		return
	}
	if parent != nil {
		s.parent[n] = parent
	}
	k := [2]int{n.Line, n.Column}
	s.at[k] = append(s.at[k], n)
	if n.Kind == yaml.AliasNode {
		return
	}
	for _, c := range n.Content {
		s.index(c, n)
	}
}

// nl is the file's line break.
func (s *source) nl() string {
	if s.crlf {
		return "\r\n"
	}
	return "\n"
}

// offset turns a 1-based line and column (counted in characters, as the
// YAML library counts) into a byte offset.
func (s *source) offset(line, col int) (int, error) {
	if line < 1 || line > len(s.lineStart) || col < 1 {
		return 0, declinef("position %d:%d is outside the file", line, col)
	}
	off := s.lineStart[line-1]
	if line == 1 {
		off += s.bom
	}
	for i := 1; i < col; i++ {
		if off >= len(s.data) || s.data[off] == '\n' {
			return 0, declinef("column %d is past the end of line %d", col, line)
		}
		_, w := utf8.DecodeRune(s.data[off:])
		off += w
	}
	return off, nil
}

// line returns line n (1-based) without its line break.
func (s *source) line(n int) string {
	if n < 1 || n > len(s.lineStart) {
		return ""
	}
	start, end := s.lineStart[n-1], len(s.data)
	if n < len(s.lineStart) {
		end = s.lineStart[n] - 1
	}
	return strings.TrimSuffix(string(s.data[start:end]), "\r")
}

// lineEnd is the offset just past line n's line break (the end of the
// file for the last line).
func (s *source) lineEnd(n int) int {
	if n < len(s.lineStart) {
		return s.lineStart[n]
	}
	return len(s.data)
}

func leadingSpaces(l string) int {
	n := 0
	for n < len(l) && l[n] == ' ' {
		n++
	}
	return n
}

// contentStart is where a node's own text begins: after its anchor and tag.
func (s *source) contentStart(n *yaml.Node) (int, error) {
	off, err := s.offset(n.Line, n.Column)
	if err != nil {
		return 0, err
	}
	for i := 0; i < 2 && off < len(s.data); i++ {
		c := s.data[off]
		if c != '&' && c != '!' {
			break
		}
		for off < len(s.data) && !isBlank(s.data[off]) {
			off++
		}
		for off < len(s.data) && (s.data[off] == ' ' || s.data[off] == '\t') {
			off++
		}
	}
	return off, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// inFlow reports whether n sits inside a flow collection.
func (s *source) inFlow(n *yaml.Node) bool {
	for p := s.parent[n]; p != nil; p = s.parent[p] {
		if p.Style&yaml.FlowStyle != 0 {
			return true
		}
	}
	return false
}

// scalarSpan returns the byte span of a scalar's text (quotes included,
// anchor and tag excluded). Block scalars and plain scalars that run over
// several lines are declined: their end is not where a simple scan says.
func (s *source) scalarSpan(n *yaml.Node) (int, int, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, 0, declinef("line %d: expected a scalar", n.Line)
	}
	start, err := s.contentStart(n)
	if err != nil {
		return 0, 0, err
	}
	d := s.data
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(d); i++ {
			switch d[i] {
			case '\\':
				i++
			case '"':
				return start, i + 1, nil
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(d); i++ {
			if d[i] == '\'' {
				if i+1 < len(d) && d[i+1] == '\'' {
					i++
					continue
				}
				return start, i + 1, nil
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return 0, 0, declinef("line %d: a block scalar (| or >) is not edited in place", n.Line)
	default:
		flow := s.inFlow(n)
		end := start
		for end < len(d) && d[end] != '\n' && d[end] != '\r' {
			c := d[end]
			if c == '#' && end > start && (d[end-1] == ' ' || d[end-1] == '\t') {
				break
			}
			if flow && (c == ',' || c == ']' || c == '}') {
				break
			}
			if c == ':' && (end+1 == len(d) || isBlank(d[end+1]) || flow && strings.IndexByte(",]}", d[end+1]) >= 0) {
				break // a key's colon: the scalar is a key
			}
			end++
		}
		for end > start && (d[end-1] == ' ' || d[end-1] == '\t') {
			end--
		}
		if string(d[start:end]) != n.Value {
			return 0, 0, declinef("line %d: a plain scalar over several lines is not edited in place", n.Line)
		}
		return start, end, nil
	}
	return 0, 0, declinef("line %d: unterminated quoted scalar", n.Line)
}

// flowEnd returns the offset of the closing bracket of a flow collection.
func (s *source) flowEnd(n *yaml.Node) (int, error) {
	start, err := s.contentStart(n)
	if err != nil {
		return 0, err
	}
	d := s.data
	if start >= len(d) || d[start] != '[' && d[start] != '{' {
		return 0, declinef("line %d: expected a flow collection", n.Line)
	}
	depth := 0
	for i := start; i < len(d); i++ {
		switch d[i] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return i, nil
			}
		case '"':
			for i++; i < len(d) && d[i] != '"'; i++ {
				if d[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(d); i++ {
				if d[i] == '\'' {
					if i+1 < len(d) && d[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
		case '#':
			if i > 0 && isBlank(d[i-1]) {
				return 0, declinef("line %d: a flow collection with comments inside is not edited in place", n.Line)
			}
		}
	}
	return 0, declinef("line %d: unterminated flow collection", n.Line)
}

// keyColumn is the column of a block mapping's keys, or of a block
// sequence's dashes.
func (s *source) keyColumn(n *yaml.Node) (int, error) {
	if len(n.Content) == 0 {
		return 0, declinef("line %d: empty block collection", n.Line)
	}
	first := n.Content[0]
	if n.Kind == yaml.MappingNode {
		return first.Column, nil
	}
	off, err := s.offset(first.Line, first.Column)
	if err != nil {
		return 0, err
	}
	ls := s.lineStart[first.Line-1]
	for i := off - 1; i >= ls; i-- {
		if s.data[i] == '-' {
			return utf8.RuneCount(s.data[ls:i]) + 1, nil
		}
		if s.data[i] != ' ' && s.data[i] != '\t' {
			break
		}
	}
	return 0, declinef("line %d: cannot find the sequence's dash", first.Line)
}

// blockEnd returns the offset just past the last line of a block
// collection's text: the line after which a new entry goes. col is the
// collection's key (or dash) column. Lines indented deeper than col
// belong to the collection whatever they look like (a block scalar's
// content may look like a comment); blank lines and comments at col or
// less do not end it, anything else does.
func (s *source) blockEnd(n *yaml.Node, col int) (int, error) {
	last := n.Content[len(n.Content)-1]
	startLine := last.Line
	if n.Kind == yaml.MappingNode {
		startLine = n.Content[len(n.Content)-2].Line
	}
	zeroSeq := false
	if n.Kind == yaml.MappingNode {
		if v := last; v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 {
			if c, err := s.keyColumn(v); err == nil && c == col {
				zeroSeq = true
			}
		}
	}
	lastContent := startLine
	for l := startLine + 1; l <= len(s.lineStart); l++ {
		text := s.line(l)
		trimmed := strings.TrimLeft(text, " ")
		ind := len(text) - len(trimmed)
		switch {
		case strings.TrimSpace(trimmed) == "":
			continue
		case ind > col-1:
			lastContent = l
		case ind == col-1 && zeroSeq && (trimmed == "-" || strings.HasPrefix(trimmed, "- ")):
			lastContent = l
		case strings.HasPrefix(trimmed, "#"):
			continue
		default:
			return s.lineEnd(lastContent), nil
		}
	}
	return s.lineEnd(lastContent), nil
}

// onlySpacesBefore reports whether only spaces come before column col on
// a line.
func (s *source) onlySpacesBefore(line, col int) bool {
	l := s.line(line)
	n := 0
	for _, r := range l {
		if n >= col-1 {
			break
		}
		if r != ' ' {
			return false
		}
		n++
	}
	return true
}

// inferIndent finds the file's usual indentation step (child key column
// minus parent key column) and the usual offset of a block sequence's
// dash from the key it belongs to, by majority; 2 and 2 when the file
// shows none.
func (s *source) inferIndent() (step, seq int) {
	steps, seqs := map[int]int{}, map[int]int{}
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > 64 || n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			return
		}
		if n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle == 0 {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch {
				case v.Style&yaml.FlowStyle != 0:
				case v.Kind == yaml.MappingNode && len(v.Content) > 0 && v.Content[0].Line > k.Line:
					if d := v.Content[0].Column - k.Column; d > 0 {
						steps[d]++
					}
				case v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Line > k.Line:
					if c, err := s.keyColumn(v); err == nil && c >= k.Column {
						seqs[c-k.Column]++
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(s.root, 0)
	return majority(steps, 2), majority(seqs, 2)
}

func majority(m map[int]int, def int) int {
	best, n := def, 0
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		if m[k] > n {
			best, n = k, m[k]
		}
	}
	return best
}

// mapGet returns the key and value nodes of an explicit key in a mapping.
func mapGet(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) && m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "")
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// mergeSources are the mappings a mapping merges, in precedence order.
func mergeSources(m *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) {
			continue
		}
		switch v := resolve(m.Content[i+1]); {
		case v == nil:
		case v.Kind == yaml.MappingNode:
			out = append(out, v)
		case v.Kind == yaml.SequenceNode:
			for _, c := range v.Content {
				if c = resolve(c); c != nil && c.Kind == yaml.MappingNode {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// lookup finds a key the way a merge-aware decoder does: the mapping's own
// key first, then the merged mappings in order. owner is the mapping that
// holds the key as written.
func lookup(m *yaml.Node, key string) (owner, k, v *yaml.Node) {
	return lookupDepth(m, key, 0)
}

func lookupDepth(m *yaml.Node, key string, depth int) (owner, k, v *yaml.Node) {
	if m = resolve(m); m == nil || m.Kind != yaml.MappingNode || depth > 32 {
		return nil, nil, nil
	}
	if k, v := mapGet(m, key); k != nil {
		return m, k, v
	}
	for _, src := range mergeSources(m) {
		if o, k, v := lookupDepth(src, key, depth+1); k != nil {
			return o, k, v
		}
	}
	return nil, nil, nil
}

// nodeAt returns the nodes that start at a line and column.
func (s *source) nodeAt(line, col int) []*yaml.Node { return s.at[[2]int{line, col}] }

// definesAnchor returns the node carrying an anchor, if any.
func definesAnchor(n *yaml.Node, name string, depth int) *yaml.Node {
	if n == nil || depth > 256 {
		return nil
	}
	if n.Anchor == name {
		return n
	}
	if n.Kind == yaml.AliasNode {
		return nil
	}
	for _, c := range n.Content {
		if a := definesAnchor(c, name, depth+1); a != nil {
			return a
		}
	}
	return nil
}
