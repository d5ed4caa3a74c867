package image

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    *Dockerfile
		wantErr string
	}{
		{
			name: "stages, global args, flags and continuations",
			src: "# syntax=docker/dockerfile:1\n" +
				"ARG GO=1.26\n" +
				"FROM --platform=$BUILDPLATFORM golang:${GO} AS build\n" +
				"RUN --mount=type=cache,target=/go \\\n" +
				"    # a comment inside the continuation\n" +
				"    go build \\\n" +
				"    ./cmd\n" +
				"\n" +
				"from scratch\n" +
				"copy --from=build /out /app\n",
			want: &Dockerfile{
				GlobalArgs: []Instruction{{Line: 2, Cmd: "ARG", Args: "GO=1.26"}},
				Stages: []Stage{
					{
						From: Instruction{Line: 3, Cmd: "FROM", Flags: []string{"--platform=$BUILDPLATFORM"}, Args: "golang:${GO} AS build"},
						Base: "golang:${GO}", Name: "build",
						Instructions: []Instruction{{Line: 4, Cmd: "RUN", Flags: []string{"--mount=type=cache,target=/go"}, Args: "go build ./cmd"}},
					},
					{
						From:         Instruction{Line: 9, Cmd: "FROM", Args: "scratch"},
						Base:         "scratch",
						Instructions: []Instruction{{Line: 10, Cmd: "COPY", Flags: []string{"--from=build"}, Args: "/out /app"}},
					},
				},
			},
		},
		{name: "no FROM", src: "ARG X=1\n", wantErr: "no FROM"},
		{name: "instruction before FROM", src: "RUN true\nFROM scratch\n", wantErr: "RUN before the first FROM"},
		{name: "malformed FROM", src: "FROM a b\n", wantErr: "is not \"image [AS name]\""},
		{name: "ends inside a continuation", src: "FROM scratch\nRUN a \\\n", wantErr: "ends inside a continued instruction"},
		{name: "heredoc", src: "FROM alpine\nRUN <<EOF\necho hi\nEOF\n", wantErr: "heredocs are not supported"},
		{name: "escape directive", src: "# escape=`\nFROM scratch\n", wantErr: "escape directive"},
		{name: "not an instruction", src: "FROM scratch\n123 x\n", wantErr: "is not an instruction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestInstructionHelpers(t *testing.T) {
	in := Instruction{Cmd: "COPY", Flags: []string{"--from=build", "--chmod=0755"}, Args: `["/kafka-sidecar", "run"]`}
	if v, ok := in.Flag("from"); !ok || v != "build" {
		t.Errorf("Flag(from) = %q, %v", v, ok)
	}
	if _, ok := in.Flag("chown"); ok {
		t.Error("Flag(chown) found a flag that is not there")
	}
	if args, ok := in.ExecForm(); !ok || !reflect.DeepEqual(args, []string{"/kafka-sidecar", "run"}) {
		t.Errorf("ExecForm = %q, %v", args, ok)
	}
	if _, ok := (Instruction{Args: "/kafka-sidecar run"}).ExecForm(); ok {
		t.Error("ExecForm accepted the shell form")
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "  go  build\t./x ", want: []string{"go", "build", "./x"}},
		{in: `-ldflags "-s -w -X main.version=${VERSION}"`, want: []string{"-ldflags", "-s -w -X main.version=${VERSION}"}},
		{in: `'a b' "c\"d" e\ f`, want: []string{"a b", `c"d`, "e f"}},
		{in: `"back\slash"`, want: []string{`back\slash`}},
		{in: `a""b ''`, want: []string{"ab", ""}},
		{in: `"open`, wantErr: true},
		{in: `'open`, wantErr: true},
		{in: `trailing\`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SplitWords(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SplitWords(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SplitWords(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	got, err := Labels(`org.opencontainers.image.title="kafka-sidecar" a=b "c=d e"`)
	if err != nil {
		t.Fatalf("Labels: %v", err)
	}
	want := map[string]string{"org.opencontainers.image.title": "kafka-sidecar", "a": "b", "c": "d e"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Labels = %v, want %v", got, want)
	}
	for _, bad := range []string{"novalue", "=x", `a="open`} {
		if _, err := Labels(bad); err == nil {
			t.Errorf("Labels(%q) accepted it", bad)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts is consistent: upper-case keywords, lines that only
// grow, at least one stage, and a base image for each.
func FuzzParse(f *testing.F) {
	if src, err := os.ReadFile("../../Dockerfile"); err == nil {
		f.Add(string(src))
	}
	f.Add("FROM scratch\n")
	f.Add("ARG A=1\nFROM a AS b\nRUN x \\\n y\nFROM b\nCOPY --from=b / /\n")
	f.Add("FROM x\nRUN a \\\n# c\n\\\n b\n")
	f.Add("# escape=`\nFROM x\n")
	f.Fuzz(func(t *testing.T, src string) {
		d, err := Parse(strings.NewReader(src))
		if err != nil {
			return
		}
		if len(d.Stages) == 0 {
			t.Fatal("accepted a Dockerfile without stages")
		}
		last := 0
		check := func(in Instruction) {
			if !isKeyword(in.Cmd) {
				t.Fatalf("keyword %q is not upper case", in.Cmd)
			}
			if in.Line <= last {
				t.Fatalf("line %d after line %d", in.Line, last)
			}
			last = in.Line
		}
		for _, in := range d.GlobalArgs {
			check(in)
		}
		for _, s := range d.Stages {
			check(s.From)
			if s.Base == "" {
				t.Fatalf("stage at line %d without a base", s.From.Line)
			}
			for _, in := range s.Instructions {
				check(in)
				if in.Cmd == "FROM" {
					t.Fatalf("FROM at line %d inside a stage", in.Line)
				}
			}
		}
	})
}

// FuzzSplitWords: words that SplitWords returns, quoted again, split back into the same words.
func FuzzSplitWords(f *testing.F) {
	for _, seed := range []string{"", "a b", `-ldflags "-s -w -X main.version=${VERSION}"`, `'x y' "z\"" w\ v`, `"open`, `a\`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := SplitWords(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting %q: %v", quoted, err)
		}
		if len(again) != len(words) {
			t.Fatalf("split %q into %q, then %q into %q", s, words, quoted, again)
		}
		for i := range words {
			if again[i] != words[i] {
				t.Fatalf("word %d: %s became %s", i, strconv.Quote(words[i]), strconv.Quote(again[i]))
			}
		}
	})
}
