package ship

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
)

// Label is one Loki label or structured-metadata pair.
type Label struct {
	Name, Value string
}

// Labels is a label set sorted by name.
type Labels []Label

// String renders the set as Loki's push API expects in the protobuf
// encoding: {a="1", b="2"}.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Get returns the value of name, or "".
func (ls Labels) Get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func (ls Labels) sort() {
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
}

// recordKind says what a queue record carries.
type recordKind byte

const (
	// kindEntry is a log entry for Loki, with the position of its source
	// after it.
	kindEntry recordKind = 1
	// kindCursor moves a source's position without an entry, e.g. when a
	// stopped container's cursor is settled.
	kindCursor recordKind = 2
	// kindForget drops a source's position (its container was removed).
	kindForget recordKind = 3
)

// Record is one entry of the on-disk queue. Every record names its source
// and the source's position after it, so that the queue alone says how far
// each source got: a record that reached the disk and its position are one
// write, and a position can never run ahead of the data it covers.
type Record struct {
	Kind   recordKind
	Source string // "events" or "logs/<container id>"
	Cursor Cursor // the source's position after this record

	// Entry fields (Kind == kindEntry).
	Time     int64  // Unix nanoseconds
	Labels   Labels // stream labels, sorted
	Line     string
	Metadata Labels // structured metadata, sorted
}

const (
	recordHeaderLen = 8        // uint32 body length + uint32 CRC-32C of the body
	maxRecordBody   = 64 << 20 // far above any entry the sources produce
	recordVersion   = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks a record cut short by a crash mid-write: the recovery scan
// truncates the queue there.
var errTorn = errors.New("torn record")

// appendRecord encodes r with its header onto buf.
func appendRecord(buf []byte, r *Record) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderLen)...)
	body := len(buf)
	buf = append(buf, recordVersion, byte(r.Kind))
	buf = appendString(buf, r.Source)
	buf = binary.AppendVarint(buf, r.Cursor.Anchor)
	buf = binary.AppendUvarint(buf, r.Cursor.Skip)
	if r.Kind == kindEntry {
		buf = binary.AppendVarint(buf, r.Time)
		buf = appendLabels(buf, r.Labels)
		buf = appendString(buf, r.Line)
		buf = appendLabels(buf, r.Metadata)
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(buf)-body))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[body:], crcTable))
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendLabels(buf []byte, ls Labels) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(ls)))
	for _, l := range ls {
		buf = appendString(buf, l.Name)
		buf = appendString(buf, l.Value)
	}
	return buf
}

// parseHeader validates a record header and returns the body length.
func parseHeader(h []byte) (n int, crc uint32, err error) {
	n = int(binary.LittleEndian.Uint32(h))
	if n < 2 || n > maxRecordBody {
		return 0, 0, fmt.Errorf("record body length %d out of range", n)
	}
	return n, binary.LittleEndian.Uint32(h[4:]), nil
}

// decodeRecord parses a record body (after the header) whose CRC matched.
// The body is untrusted in the sense that disks and crashes corrupt data:
// every length is checked against what remains, and trailing bytes are an
// error.
func decodeRecord(body []byte) (Record, error) {
	d := decoder{b: body}
	var r Record
	if v := d.byte(); v != recordVersion {
		return r, fmt.Errorf("record version %d, want %d", v, recordVersion)
	}
	r.Kind = recordKind(d.byte())
	r.Source = d.string()
	r.Cursor.Anchor = d.varint()
	r.Cursor.Skip = d.uvarint()
	switch r.Kind {
	case kindEntry:
		r.Time = d.varint()
		r.Labels = d.labels()
		r.Line = d.string()
		r.Metadata = d.labels()
	case kindCursor, kindForget:
	default:
		if d.err == nil {
			d.err = fmt.Errorf("unknown record kind %d", r.Kind)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes after the record", len(d.b))
	}
	if d.err == nil && r.Source == "" {
		d.err = errors.New("record without a source")
	}
	if d.err != nil {
		return Record{}, fmt.Errorf("decoding queue record: %w", d.err)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s", what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) labels() Labels {
	n := d.uvarint()
	// Each pair takes at least two bytes, which bounds the allocation by
	// the input rather than by a corrupt count.
	if d.err != nil || n > uint64(len(d.b))/2 {
		d.fail("label count")
		return nil
	}
	if n == 0 {
		return nil
	}
	ls := make(Labels, 0, n)
	for range n {
		name := d.string()
		value := d.string()
		if d.err != nil {
			return nil
		}
		ls = append(ls, Label{Name: name, Value: value})
	}
	return ls
}
