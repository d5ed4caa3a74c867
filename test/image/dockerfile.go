package image

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Instruction is one Dockerfile instruction, with line continuations joined.
type Instruction struct {
	// Line is the 1-based line the instruction starts on.
	Line int
	// Cmd is the keyword in upper case, e.g. "FROM" or "RUN".
	Cmd string
	// Flags are the leading --name=value options, e.g. "--from=build" or "--mount=type=cache,target=/x".
	Flags []string
	// Args is the rest of the instruction after the flags, continuations joined by a space.
	Args string
}

// Flag returns the value of the --name=value flag and whether it is present.
func (in Instruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		key, value, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if key == name {
			return value, true
		}
	}
	return "", false
}

// ExecForm returns the arguments of an exec-form instruction (a JSON array of strings) and whether the
// instruction has that form.
func (in Instruction) ExecForm() ([]string, bool) {
	if !strings.HasPrefix(in.Args, "[") {
		return nil, false
	}
	var args []string
	if err := json.Unmarshal([]byte(in.Args), &args); err != nil {
		return nil, false
	}
	return args, true
}

// Stage is one build stage: its FROM and the instructions up to the next FROM.
type Stage struct {
	// From is the stage's FROM instruction.
	From Instruction
	// Base is the image (or earlier stage) the stage starts from, as written.
	Base string
	// Name is the name given with AS, or empty.
	Name string
	// Instructions are the stage's instructions after FROM, in order.
	Instructions []Instruction
}

// Find returns the stage's instructions with the given keyword.
func (s Stage) Find(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	// GlobalArgs are the ARG instructions before the first FROM, usable in FROM lines.
	GlobalArgs []Instruction
	// Stages are the build stages in order; the last one is the image.
	Stages []Stage
}

// Final returns the last stage, the one the image is made of.
func (d *Dockerfile) Final() Stage { return d.Stages[len(d.Stages)-1] }

// ParseFile parses the Dockerfile at path.
func ParseFile(path string) (*Dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening Dockerfile: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a Dockerfile. It fails on instructions before the first FROM other than ARG, on a file with no
// FROM, on malformed FROM lines, and on the features it does not model (heredocs, the escape directive).
func Parse(r io.Reader) (*Dockerfile, error) {
	instructions, err := readInstructions(r)
	if err != nil {
		return nil, err
	}
	d := &Dockerfile{}
	for _, in := range instructions {
		if in.Cmd == "FROM" {
			stage, err := parseFrom(in)
			if err != nil {
				return nil, err
			}
			d.Stages = append(d.Stages, stage)
			continue
		}
		if len(d.Stages) == 0 {
			if in.Cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			d.GlobalArgs = append(d.GlobalArgs, in)
			continue
		}
		last := &d.Stages[len(d.Stages)-1]
		last.Instructions = append(last.Instructions, in)
	}
	if len(d.Stages) == 0 {
		return nil, errors.New("parsing Dockerfile: no FROM instruction")
	}
	return d, nil
}

// readInstructions joins continuation lines and splits each instruction into keyword, flags and arguments.
func readInstructions(r io.Reader) ([]Instruction, error) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	var out []Instruction
	var parts []string
	start, lineNo := 0, 0
	directives := true
	for scanner.Scan() {
		lineNo++
		line := strings.TrimRight(scanner.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			// Parser directives sit in the leading comments; only the default escape character is modelled.
			if directives && strings.HasPrefix(strings.ToLower(strings.ReplaceAll(trimmed, " ", "")), "#escape=") {
				return nil, fmt.Errorf("line %d: the escape directive is not supported", lineNo)
			}
			continue // comments, also between continuation lines, are dropped
		}
		directives = false
		if trimmed == "" && len(parts) == 0 {
			continue
		}
		if len(parts) == 0 {
			start = lineNo
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			parts = append(parts, strings.TrimSpace(cont))
			continue
		}
		parts = append(parts, trimmed)
		in, err := splitInstruction(start, strings.Join(nonEmpty(parts), " "))
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		parts = nil
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	if len(parts) > 0 {
		return nil, fmt.Errorf("line %d: the file ends inside a continued instruction", start)
	}
	return out, nil
}

func nonEmpty(parts []string) []string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitInstruction(line int, text string) (Instruction, error) {
	keyword, rest, _ := strings.Cut(text, " ")
	in := Instruction{Line: line, Cmd: strings.ToUpper(keyword)}
	if !isKeyword(in.Cmd) {
		return in, fmt.Errorf("line %d: %q is not an instruction", line, keyword)
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		in.Flags = append(in.Flags, flag)
		rest = strings.TrimSpace(after)
	}
	if strings.Contains(rest, "<<") && (in.Cmd == "RUN" || in.Cmd == "COPY" || in.Cmd == "ADD") {
		return in, fmt.Errorf("line %d: heredocs are not supported", line)
	}
	in.Args = rest
	return in, nil
}

func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func parseFrom(in Instruction) (Stage, error) {
	words := strings.Fields(in.Args)
	stage := Stage{From: in}
	switch {
	case len(words) == 1:
		stage.Base = words[0]
	case len(words) == 3 && strings.EqualFold(words[1], "AS"):
		stage.Base, stage.Name = words[0], words[2]
	default:
		return stage, fmt.Errorf("line %d: FROM %q is not \"image [AS name]\"", in.Line, in.Args)
	}
	return stage, nil
}

// SplitWords splits shell-style text into words the way a POSIX shell would before expansion: unquoted
// blanks separate words, single quotes keep everything literal, double quotes keep blanks, and a backslash
// escapes the next character (inside double quotes only before $, `, ", \ and a newline).
func SplitWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	const (
		plain = iota
		single
		double
	)
	state := plain
	runes := []rune(s)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch state {
		case single:
			if r == '\'' {
				state = plain
			} else {
				word.WriteRune(r)
			}
		case double:
			switch {
			case r == '"':
				state = plain
			case r == '\\' && i+1 < len(runes) && strings.ContainsRune("$`\"\\\n", runes[i+1]):
				i++
				word.WriteRune(runes[i])
			default:
				word.WriteRune(r)
			}
		default:
			switch {
			case r == ' ' || r == '\t' || r == '\n':
				if inWord {
					words = append(words, word.String())
					word.Reset()
					inWord = false
				}
				continue
			case r == '\'':
				state = single
			case r == '"':
				state = double
			case r == '\\':
				if i+1 >= len(runes) {
					return nil, errors.New("splitting words: trailing backslash")
				}
				i++
				word.WriteRune(runes[i])
			default:
				word.WriteRune(r)
			}
		}
		inWord = true
	}
	if state != plain {
		return nil, errors.New("splitting words: unterminated quote")
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// Labels returns the key=value pairs of a LABEL instruction's arguments.
func Labels(args string) (map[string]string, error) {
	words, err := SplitWords(args)
	if err != nil {
		return nil, fmt.Errorf("parsing labels: %w", err)
	}
	labels := make(map[string]string, len(words))
	for _, w := range words {
		key, value, ok := strings.Cut(w, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("parsing labels: %q is not key=value", w)
		}
		labels[key] = value
	}
	return labels, nil
}
