package compose

import "go.yaml.in/yaml/v4"

// Parsed is a compose file as Load read and parsed it: its bytes and the
// node tree of its top-level mapping. `hyhome fix` plans its edits on it
// rather than parsing every file a second time. The tree is shared: it must
// not be modified.
type Parsed struct {
	Path string
	Data []byte
	Root *yaml.Node
}

func parsedFiles(fs []*yamlFile) []Parsed {
	out := make([]Parsed, 0, len(fs))
	for _, f := range fs {
		out = append(out, Parsed{Path: f.path, Data: f.content, Root: f.root})
	}
	return out
}
