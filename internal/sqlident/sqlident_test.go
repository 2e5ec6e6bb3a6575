package sqlident

import "testing"

func TestParse(t *testing.T) {
	good := map[string]string{
		"outbox":                   `"outbox"`,
		"app.outbox_2":             `"app"."outbox_2"`,
		"_private":                 `"_private"`,
		"hexeract_outbox_a1b2c3d4": `"hexeract_outbox_a1b2c3d4"`,
	}
	for in, quoted := range good {
		n, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if n.Quoted() != quoted || n.String() != in {
			t.Errorf("Parse(%q) = %s / %s", in, n.Quoted(), n.String())
		}
	}
	bad := []string{
		"", ".", "a.", ".a", "a.b.c", "Outbox", "1outbox", "out box", `out"box`,
		"outbox; DROP TABLE users; --", "outbox'--", "out-box", "outbox\x00",
		"a234567890123456789012345678901234567890123456789012345678901234",
	}
	for _, in := range bad {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted a bad name", in)
		}
	}
}

func TestDerive(t *testing.T) {
	n := MustParse("app.outbox")
	d, err := n.Derive("_dead")
	if err != nil || d.Quoted() != `"app"."outbox_dead"` {
		t.Fatalf("Derive = %v, %v", d, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"outbox", "a.b", `x"; drop`, "A", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		for _, r := range n.Quoted() {
			if r == ';' || r == '\'' || r == ' ' || r == '\\' {
				t.Fatalf("accepted %q gives unsafe SQL %s", s, n.Quoted())
			}
		}
	})
}
