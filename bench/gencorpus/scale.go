package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/compose"
)

// scale writes out/copy-NNNN, whole copies of src, and then out/rest with
// single-file projects of src, so that lint reads exactly want compose files
// under out (the files a lint summary counts: those of the projects that
// load). It prints what it made.
func scale(src, out string, want int) error {
	perCopy, singles, err := survey(src)
	if err != nil {
		return err
	}
	if perCopy == 0 {
		return fmt.Errorf("%s: no compose project loads", src)
	}
	copies, rest := want/perCopy, want%perCopy
	if rest > len(singles) {
		return fmt.Errorf("%s: %d files over %d copies, but only %d single-file projects to make them up", src, rest, copies, len(singles))
	}
	for i := 0; i < copies; i++ {
		if err := copyTree(src, filepath.Join(out, fmt.Sprintf("copy-%04d", i))); err != nil {
			return err
		}
	}
	for _, dir := range singles[:rest] {
		rel, err := filepath.Rel(src, dir)
		if err != nil {
			return err
		}
		if err := copyDirFiles(dir, filepath.Join(out, "rest", rel)); err != nil {
			return err
		}
	}
	fmt.Printf("%s: %d copies of %d files + %d single-file projects = %d files\n", out, copies, perCopy, rest, copies*perCopy+rest)
	return nil
}

// survey counts the compose files lint reads in src and lists the
// directories whose only YAML file is a project of its own that loads and
// reads no other file: copying such a directory adds exactly one file.
func survey(src string) (perCopy int, singles []string, err error) {
	set, err := compose.FindProjects(src)
	if err != nil {
		return 0, nil, err
	}
	yamls := map[string]int{}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := strings.ToLower(filepath.Ext(p)); !d.IsDir() && (ext == ".yml" || ext == ".yaml") {
			yamls[filepath.Dir(p)]++
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	files := map[string]bool{}
	for _, ps := range set.Projects {
		res, err := compose.Load(context.Background(), set.Options(ps, compose.Options{Environ: os.Environ()}))
		if err != nil {
			continue
		}
		read := map[string]bool{}
		for _, f := range res.Project.Files {
			read[f] = true
		}
		for _, w := range res.Project.Workloads {
			for _, f := range w.Files {
				read[f] = true
			}
		}
		for f := range read {
			files[f] = true
		}
		if len(ps.Files) == 1 && len(read) == 1 && read[ps.Files[0]] && yamls[filepath.Dir(ps.Files[0])] == 1 {
			singles = append(singles, filepath.Dir(ps.Files[0]))
		}
	}
	sort.Strings(singles)
	return len(files), singles, nil
}

// copyTree copies the directories and regular files of src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

// copyDirFiles copies the regular files directly in src (not its
// subdirectories) to dst.
func copyDirFiles(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
