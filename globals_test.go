package hexeract_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// notLibrary are the trees whose package-level variables this check (and
// the gochecknoglobals exclusion in .golangci.yml) leaves alone: programs
// and test support, one instance per process, not code a second App in the
// same process could share state through.
var notLibrary = []string{"examples", "e2e", "cmd", "internal/testenv", "interop"}

// justified is the comment that lets a package-level variable through, here
// and in golangci-lint: "//nolint:gochecknoglobals // <reason>" on the
// variable's line.
var justified = regexp.MustCompile(`//nolint:gochecknoglobals // \S.{8,}`)

// The library holds no package-level mutable state ("The App owns what is
// attached to it", DESIGN.md): every package-level var in its non-test Go
// code is one gochecknoglobals allows by itself (the blank identifier, an
// error sentinel named err... built with errors.New, a //go:embed file
// set) or carries a
// "//nolint:gochecknoglobals // reason" comment saying why it is immutable.
// golangci-lint (.golangci.yml) checks the same rule.
func TestNoPackageLevelMutableState(t *testing.T) {
	var bad []string
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			for _, skip := range notLibrary {
				if path == skip {
					return filepath.SkipDir
				}
			}
			if strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := parseFile(path)
		if err != nil {
			return err
		}
		checked++
		bad = append(bad, src.unjustifiedVars()...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d library files checked; is the test running in the module root?", checked)
	}
	for _, b := range bad {
		t.Errorf("%s: package-level variable without a justification; make it a constant or a function, keep it on the object the caller holds, or, when it is immutable, add //nolint:gochecknoglobals // <why it is never written>", b)
	}
}

type goFile struct {
	path  string
	fset  *token.FileSet
	file  *ast.File
	lines []string
}

func parseFile(path string) (*goFile, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			p := fset.Position(c.Slash)
			for len(lines) <= p.Line {
				lines = append(lines, "")
			}
			lines[p.Line] += c.Text
		}
	}
	return &goFile{path: path, fset: fset, file: f, lines: lines}, nil
}

// comment returns the comments on line n.
func (g *goFile) comment(n int) string {
	if n < len(g.lines) {
		return g.lines[n]
	}
	return ""
}

func (g *goFile) unjustifiedVars() []string {
	var bad []string
	for _, d := range g.file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name == "_" || isErrorSentinel(name.Name, vs, i) || isEmbed(gd, vs) {
					continue
				}
				line := g.fset.Position(name.Pos()).Line
				if justified.MatchString(g.comment(line)) {
					continue
				}
				bad = append(bad, g.path+":"+itoa(line)+" "+name.Name)
			}
		}
	}
	return bad
}

// isEmbed reports a //go:embed variable (embedded files, read-only), which
// gochecknoglobals allows too.
func isEmbed(gd *ast.GenDecl, vs *ast.ValueSpec) bool {
	for _, doc := range []*ast.CommentGroup{gd.Doc, vs.Doc} {
		if doc == nil {
			continue
		}
		for _, c := range doc.List {
			if strings.HasPrefix(c.Text, "//go:embed ") {
				return true
			}
		}
	}
	return false
}

// isErrorSentinel reports what gochecknoglobals allows without a comment:
// a variable named err... or Err... whose value is errors.New(...).
func isErrorSentinel(name string, vs *ast.ValueSpec, i int) bool {
	if !strings.HasPrefix(name, "err") && !strings.HasPrefix(name, "Err") {
		return false
	}
	if i >= len(vs.Values) {
		return false
	}
	call, ok := vs.Values[i].(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "errors" && sel.Sel.Name == "New"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
