package router_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// keyLiteralExceptions are string literals allowed as metadata keys outside
// package router, by directory (relative to the module root). Each one says
// why.
var keyLiteralExceptions = map[string]map[string]string{}

// metadataLike reports whether e reads like Watermill metadata: x.Metadata,
// or a variable named md, meta or metadata.
func metadataLike(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		return x.Sel.Name == "Metadata"
	case *ast.Ident:
		switch x.Name {
		case "md", "meta", "metadata", "Metadata":
			return true
		}
	}
	return false
}

func isStringLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	return b.Value, true
}

// keyLiterals returns the positions and values of the string literals used
// as metadata keys in f: md.Set("k", ...), md.Get("k"), md.Delete("k"),
// md["k"], message.Metadata{"k": ...}.
func keyLiterals(fset *token.FileSet, f *ast.File) (found []string) {
	add := func(pos token.Pos, lit string) {
		found = append(found, fset.Position(pos).String()+": "+lit)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok || len(x.Args) == 0 || !metadataLike(sel.X) {
				break
			}
			switch sel.Sel.Name {
			case "Set", "Get", "Delete":
				if lit, ok := isStringLit(x.Args[0]); ok {
					add(x.Pos(), lit)
				}
			}
		case *ast.IndexExpr:
			if !metadataLike(x.X) {
				break
			}
			if lit, ok := isStringLit(x.Index); ok {
				add(x.Pos(), lit)
			}
		case *ast.CompositeLit:
			t, ok := x.Type.(*ast.SelectorExpr)
			if !ok || t.Sel.Name != "Metadata" {
				break
			}
			for _, el := range x.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if lit, ok := isStringLit(kv.Key); ok {
						add(kv.Pos(), lit)
					}
				}
			}
		}
		return true
	})
	return found
}

// TestMetadataKeysOnlyInRouter: every metadata key Hexeract writes or reads
// is a constant of router/keys.go; non-test code elsewhere in the module
// (library, the rest of router, commands and examples) names keys by those
// constants, never by a string literal.
func TestMetadataKeysOnlyInRouter(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	var bad []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			if name == "testdata" || name == "node_modules" || (strings.HasPrefix(name, ".") && rel != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.ToSlash(rel) == "router/keys.go" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		allowed := keyLiteralExceptions[filepath.ToSlash(filepath.Dir(rel))]
		for _, hit := range keyLiterals(fset, f) {
			lit := hit[strings.LastIndex(hit, ": ")+2:]
			if _, ok := allowed[lit]; ok {
				continue
			}
			bad = append(bad, strings.TrimPrefix(hit, root+string(filepath.Separator)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned %d non-test Go files under %s; expected the whole module", files, root)
	}
	for _, b := range bad {
		t.Errorf("%s: metadata key as a string literal; use (or add) a constant in router/keys.go", b)
	}
}

// TestKeyLiteralScanner: the scanner finds each form of a literal key and
// ignores keys named by constants.
func TestKeyLiteralScanner(t *testing.T) {
	src := `package p
func f(msg *message.Message, md message.Metadata) {
	msg.Metadata.Set("a", "1")
	_ = md.Get("b")
	_ = msg.Metadata["c"]
	md.Delete("d")
	_ = message.Metadata{"e": "1", router.KeyID: "x"}
	msg.Metadata.Set(router.KeyType, "t")
	_ = md[router.KeySource]
	q.Set("not-metadata", "1")
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, hit := range keyLiterals(fset, f) {
		got = append(got, hit[strings.LastIndex(hit, ": ")+2:])
	}
	want := `"a" "b" "c" "d" "e"`
	if strings.Join(got, " ") != want {
		t.Fatalf("found %v, want %s", got, want)
	}
}
